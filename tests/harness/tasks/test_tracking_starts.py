"""The tracker's multi-start rule (issue 20, ``-o tracking.starts=K``): K start boxes per landmarker call,
the frame's shape the coordinate-wise median (or mean) of the K shapes — after RCPR's multiple
initialisations (Burgos-Artizzu et al., ICCV 2013).  Fakes with hand-computed answers and named edge
cases; the real clip is measured in docs/landmarks.md and checked in test_tracking.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.errors import ConfigError, HarnessError
from harness.metrics.tracking import frame_jitter
from harness.tasks.tracking import (
    MAX_STARTS, Follower, TrackerSettings, _starts_text, combine_shapes, rigid_points, start_boxes, summary_text,
)
from test_tracking import TEMPLATE, _frames, _iod
from test_tracking_variants import BoxAt

BOX = np.array([100.0, 60.0, 150.0, 110.0])  # side 50


class ByBox:
    """Fake landmarker whose five points depend on the box alone, non-monotonically, so that the
    coordinate-wise median mixes the boxes' shapes: x = |x1 - 103| + p, y = (x1 mod 4) + 10 p + (y1 - 60)."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        self.calls.append(boxes.copy())
        p = np.arange(5)
        return np.stack([np.stack([abs(b[0] - 103) + p, b[0] % 4 + 10 * p + (b[1] - 60)], axis=1) for b in boxes]
                        ).astype(np.float32)


def _follower(lm, **settings) -> Follower:
    return Follower(lm, None, 5, _iod, track=True, settings=TrackerSettings(**settings), rigid=rigid_points("five"))


def test_start_boxes_are_the_box_and_opposite_pairs_computed_by_hand():
    np.testing.assert_array_equal(start_boxes(BOX, 1, 0.1), BOX[None])
    s = 0.1 * 50  # spread x side: 5 px
    e = 25 * math.exp(0.1)  # half-side scaled by exp(spread)
    i = 25 / math.exp(0.1)  # and by exp(-spread)
    want7 = [BOX, BOX + [s, 0, s, 0], BOX + [0, s, 0, s], [125 - e, 85 - e, 125 + e, 85 + e],  # box, then x, y, scale
             BOX - [s, 0, s, 0], BOX - [0, s, 0, s], [125 - i, 85 - i, 125 + i, 85 + i]]  # their opposites
    np.testing.assert_allclose(start_boxes(BOX, 7, 0.1), np.array(want7), atol=1e-9)
    np.testing.assert_allclose(start_boxes(BOX, 3, 0.1), np.array(want7)[[0, 1, 4]], atol=1e-9)
    # every K: the box first, then pairs whose centres and log-sizes average back to the box's (no drift)
    for k in range(3, MAX_STARTS + 1, 2):
        b = start_boxes(BOX, k, 0.04)
        assert b.shape == (k, 4) and len({tuple(np.round(x, 9)) for x in b}) == k
        np.testing.assert_array_equal(b[0], BOX)
        np.testing.assert_allclose(((b[:, :2] + b[:, 2:]) / 2).mean(axis=0), [125, 85], atol=1e-9)
        np.testing.assert_allclose(np.log(b[:, 2:] - b[:, :2]).mean(axis=0), np.log([50, 50]), atol=1e-12)
        moved = np.linalg.norm(np.c_[((b[1:, :2] + b[1:, 2:]) / 2 - [125, 85]) / 50,
                                     np.log((b[1:, 2] - b[1:, 0]) / 50)], axis=1)
        np.testing.assert_allclose(moved, 0.04, atol=1e-12)  # every perturbation is spread long


def test_k_starts_median_equals_the_hand_computation():
    lm = ByBox()
    f = _follower(lm, starts=3, spread=0.1, combine="median")
    shape = f._shape(_frames(1)[0], BOX, f.starts)
    np.testing.assert_array_equal(lm.calls[0], [BOX, BOX + [5, 0, 5, 0], BOX - [5, 0, 5, 0]])  # one call, 3 boxes
    # x1 = 100, 105, 95: x = 3, 2, 8 (+p) -> median 3; y = 0, 1, 3 (+10p) -> median 1 (the +x box's)
    p = np.arange(5)
    np.testing.assert_array_equal(shape, np.stack([3 + p, 1 + 10 * p], axis=1))
    f = _follower(lm, starts=3, spread=0.1, combine="mean")
    np.testing.assert_allclose(f._shape(_frames(1)[0], BOX, f.starts), np.stack([13 / 3 + p, 4 / 3 + 10 * p], axis=1))
    # K=5 adds the y pair (y1 = 65, 55; x1 = 100): x = 3, 2, 8, 3, 3 -> 3; y = 0, 1, 3, 0 + 5, 0 - 5 -> 1
    f = _follower(lm, starts=5, spread=0.1, combine="median")
    np.testing.assert_array_equal(f._shape(_frames(1)[0], BOX, f.starts), np.stack([3 + p, 1 + 10 * p], axis=1))
    assert f.last_spread > 0


def test_combine_named_edge_cases():
    one = np.arange(10.0).reshape(1, 5, 2)
    np.testing.assert_array_equal(combine_shapes(one), one[0])  # K = 1: the shape itself
    bad = np.concatenate([one, np.full((1, 5, 2), np.nan), one + 2])
    np.testing.assert_array_equal(combine_shapes(bad), one[0] + 1)  # a non-finite start is dropped
    assert combine_shapes(np.full((3, 5, 2), np.inf)) is None  # none finite: no shape
    even = np.stack([one[0], one[0] + 1, one[0] + 10, one[0] + 11])
    np.testing.assert_array_equal(combine_shapes(even), one[0] + 5.5)  # numpy's median of an even count
    np.testing.assert_array_equal(combine_shapes(even, "mean"), one[0] + 5.5)


class Tagged:
    """Fake landmarker: the truth of a still face plus noise fixed per (frame, integer box) — a cascade
    whose result depends on where it starts — and NaN for the 2nd, 4th, ... box of a call when ``odd_nan``."""

    def __init__(self, odd_nan: bool = False) -> None:
        self.odd_nan, self.boxes_per_call, self.seen = odd_nan, [], []

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        t = int(image[0, 0, 0])
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        self.boxes_per_call.append(len(boxes))
        self.seen.append((image, boxes.copy()))
        out = []
        for i, b in enumerate(boxes):
            r = np.round(b).astype(np.int64)
            noise = np.random.default_rng([t, *(r + 1000)]).normal(0, 1.0, (5, 2))
            shape = np.array([200.0, 150.0]) + TEMPLATE * 20 + noise
            out.append(np.full((5, 2), np.nan) if self.odd_nan and i % 2 else shape)
        return np.asarray(out, np.float32)


def _track(lm, n: int = 60, **settings):
    det = BoxAt(np.tile([200.0, 150.0], (n, 1)))
    f = Follower(lm, det, 5, _iod, track=True, settings=TrackerSettings(check_every=0, hold=0.0, **settings),
                 rigid=rigid_points("five"))
    return f, np.stack([f.step(fr) for fr in _frames(n)])


def test_k_1_is_the_single_box_path():
    lm = Tagged()
    f, shapes = _track(lm, starts=1)
    assert lm.boxes_per_call == [1] * 60 and f.starts == 1 and f.last_spread is None
    # each frame's shape is, bit for bit, the landmarker's output from the one box it was given
    replay = Tagged()
    for t, (image, boxes) in enumerate(lm.seen):
        np.testing.assert_array_equal(shapes[t], replay.predict(image, boxes)[0].astype(np.float64))
    f2, shapes2 = _track(Tagged(), starts=1, spread=0.3, combine="mean")  # spread and combine unused at K = 1
    np.testing.assert_array_equal(shapes2, shapes)


def test_multi_start_lowers_the_jitter_and_the_error_of_a_start_dependent_cascade():
    norm = np.full(60, 40.0)
    truth = np.array([200.0, 150.0]) + TEMPLATE * 20
    result = {}
    for k in (1, 9):
        lm = Tagged()
        f, shapes = _track(lm, starts=k, spread=0.04)
        assert f.redetections == 0 and set(lm.boxes_per_call[1:]) == {k}
        result[k] = (np.nanmean(frame_jitter(shapes, norm)), np.abs(shapes - truth).mean())
    assert result[9][0] < 0.6 * result[1][0]  # the median of 9 noisy starts moves less frame to frame
    assert result[9][1] < 0.6 * result[1][1]  # and sits closer to the face: no lag, less error


def test_starts_with_non_finite_shapes_keep_the_finite_ones():
    lm = Tagged(odd_nan=True)
    f, shapes = _track(lm, n=10, starts=5, spread=0.04, combine="median")
    assert np.isfinite(shapes).all() and f.redetections == 0  # 2 of the 5 starts give NaN; the other 3 carry it
    ref = Tagged()
    image, boxes = lm.seen[-1]
    finite = ref.predict(image, boxes)[[0, 2, 4]].astype(np.float64)
    np.testing.assert_array_equal(shapes[-1], np.median(finite, axis=0))


class Disagreeing(Tagged):
    """From frame ``at`` on, the perturbed starts land 15 px either side of the face (opposite pairs cancel
    in the mean, so the shape itself stays plausible): the starts disagree."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        out = super().predict(image, boxes)
        if int(image[0, 0, 0]) >= self.at and len(out) > 1:
            half = (len(out) - 1) // 2
            out[1:1 + half, :, 0] += 15
            out[1 + half:, :, 0] -= 15
        return out


def test_max_start_spread_re_detects_when_the_starts_disagree():
    f, shapes = _track(Disagreeing(at=5), n=10, starts=5, max_start_spread=0)
    assert f.redetections == 0 and np.isfinite(shapes).all()  # unchecked: the mean looks like a face
    assert f.last_spread == pytest.approx(np.sqrt(4 / 5 * 15 ** 2), rel=0.05)  # 4 of 5 starts 15 px off
    f, _ = _track(Disagreeing(at=5), n=10, starts=5, max_start_spread=0.4)  # 13.4 px < 0.4 x 40 px inter-ocular
    assert f.redetections == 0
    f, _ = _track(Disagreeing(at=5), n=10, starts=5, max_start_spread=0.3)  # 13.4 px > 12 px: fails from frame 5
    assert f.redetections == 5
    f, _ = _track(Disagreeing(at=5), n=10, starts=1, max_start_spread=0.3)  # one start: nothing to compare
    assert f.redetections == 0


def test_a_detectors_box_gets_one_start_in_both_followers():
    """Multi-start is for boxes the tracker places: on a detection both followers run the landmarker on
    the detector's box alone, so a detection gives the same shape whoever asks."""
    shapes = {}
    for track in (False, True):
        lm = Tagged()
        f = Follower(lm, BoxAt(np.tile([200.0, 150.0], (5, 1))), 5, _iod, track=track,
                     settings=TrackerSettings(starts=9, check_every=0), rigid=rigid_points("five"))
        shapes[track] = np.stack([f.step(fr) for fr in _frames(5)])
        assert lm.boxes_per_call == ([1, 9, 9, 9, 9] if track else [1] * 5)
    np.testing.assert_array_equal(shapes[True][0], shapes[False][0])


@pytest.mark.parametrize("given, message", [
    ({"starts": 4}, "tracking.starts=4: expected an odd integer in [1, 27]"),
    ({"starts": 0}, "tracking.starts=0: expected an odd integer"),
    ({"starts": MAX_STARTS + 2}, f"tracking.starts={MAX_STARTS + 2}: expected an odd integer"),
    ({"combine": "mode"}, "tracking.combine='mode': expected one of mean, median"),
])
def test_bad_starts_settings_are_one_line_config_errors(given, message):
    with pytest.raises(ConfigError) as err:
        TrackerSettings(**given)
    assert message in str(err.value) and "\n" not in str(err.value) and "-o tracking." in str(err.value)


def test_starts_settings_parse_from_options_and_bad_spreads_are_refused():
    s = TrackerSettings.from_options({"starts": "9", "spread": "0.02", "combine": "mean"})
    assert (s.starts, s.spread, s.combine) == (9, 0.02, "mean")
    with pytest.raises(HarnessError, match="starts"):
        TrackerSettings.from_options({"starts": "five"})
    for spread in (0.0, -0.1, 0.6):
        with pytest.raises(HarnessError, match="tracking.spread"):
            TrackerSettings(spread=spread)


def test_the_rule_is_stated_in_the_protocol_and_the_summary():
    assert "one start box" in _starts_text(TrackerSettings(starts=1))
    text = _starts_text(TrackerSettings(starts=5, spread=0.03, max_start_spread=0))
    assert "5 start boxes" in text and "2 pairs" in text and "0.03" in text and "mean" in text and "RCPR" in text
    assert "quality check" not in text
    checked = _starts_text(TrackerSettings(starts=9, combine="median", max_start_spread=0.06))
    assert "9 start boxes" in checked and "median" in checked and "exceeds 0.06 x inter-ocular" in checked
    row = {"mode": "tracking", "fps": 10.0, "jitter_common": 2.0, "jitter_mean": 2.0, "jitter_median": 1.9,
           "with_shape": 1.0, "breaks": 0, "detector_calls": 3, "common_frames": 9}
    result = {"sections": {"tracking": {"frames": 10, "detector": "fake", "normaliser": "inter_ocular",
                                        "rows": [row, dict(row, mode="detect_every_frame")]}},
              "protocol": {"tracking_box": "box", "tracking_starts": text}}

    class Ref:
        name = "video"

    assert f"tracking starts: {text}" in summary_text("lm", Ref(), result)
