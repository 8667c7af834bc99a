"""The tracker's jitter options (issue 20): box hysteresis (``hold``), the box fitted from the landmarker's
mean shape (``box=fit``), the one-euro filter of the reported points — on fakes with named edge cases —
dlib's mean shape read from its model file, and ``harness data video --track`` on the first 40 frames of
../shared/data/video/short_hamilton_clip.mp4."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from harness.errors import ConfigError, HarnessError
from harness.tasks._one_euro import OneEuroFilter, alpha
from harness.tasks.tracking import Follower, TrackerSettings, rigid_points
from harness.types import BoxInitialisedLandmarker
from tests.conftest import need_data
from test_tracking import BoxAt, _frames  # the same fake detector and numbered blank frames

TEMPLATE = np.array([[-1.0, -0.6], [1.0, -0.6], [0.0, 0.1], [-0.7, 0.8], [0.7, 0.8]])  # five points


def _iod(shape: np.ndarray) -> float:
    return float(np.linalg.norm(shape[0] - shape[1]))


class Pumping:
    """Fake box-initialised landmarker: the true face (``path[t]``, half-size 20) pulled 30 % of the way
    towards the start shape placed in the box (a cascade that does not fully converge), plus a fixed
    pattern of noise per (frame, box) — so a box that changes every frame makes the points wobble."""

    mean_shape = (TEMPLATE * 0.5 + 0.5) * 0.8 + 0.1  # five points inside the unit box

    def __init__(self, path: np.ndarray) -> None:
        self.path, self.boxes = path, []

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        t = int(image[0, 0, 0])
        out = []
        for b in np.asarray(boxes, np.float64).reshape(-1, 4):
            self.boxes.append(b.copy())
            rect = np.round(b)  # like dlib: integer pixel boxes
            start = rect[:2] + self.mean_shape * (rect[2:] - rect[:2])
            truth = self.path[t] + TEMPLATE * 20
            out.append(0.7 * truth + 0.3 * start)
        return np.asarray(out, np.float32)




def _follow(path: np.ndarray, **settings):
    lm, det = Pumping(path), BoxAt(path, shift=-2.0)
    settings = {"starts": 1, **settings}  # one start box: these follow the box itself (see test_tracking_starts)
    f = Follower(lm, det, 5, _iod, track=True, settings=TrackerSettings(check_every=0, **settings),
                 rigid=rigid_points("five"))
    shapes = np.stack([f.step(fr) for fr in _frames(len(path))])
    return f, lm, shapes


def test_the_fake_is_box_initialised_and_the_follower_uses_its_mean_shape():
    lm = Pumping(np.zeros((1, 2)))
    assert isinstance(lm, BoxInitialisedLandmarker)
    f = Follower(lm, BoxAt(np.zeros((1, 2)), shift=-2.0), 5, _iod, track=True)
    np.testing.assert_array_equal(f.mean, lm.mean_shape)
    assert Follower(lm, None, 68, _iod, track=True).mean is None  # a mean shape of another size is not used


def test_fit_places_the_start_shape_on_the_previous_shape():
    """Named edge case: a shape that IS the start shape in some square box gives that box back."""
    lm = Pumping(np.zeros((1, 2)))
    f = Follower(lm, None, 5, _iod, track=True, settings=TrackerSettings(box="fit"))
    f.start = lm.mean_shape
    for lo, side in (((10.0, 20.0), 50.0), ((-5.0, 300.0), 123.4)):
        shape = np.asarray(lo) + lm.mean_shape * side
        np.testing.assert_allclose(f._fit_box(shape), [*lo, lo[0] + side, lo[1] + side], atol=1e-9)


def test_hold_keeps_one_box_on_a_still_face_and_moves_it_with_the_face():
    still = np.tile([200.0, 150.0], (30, 1))
    f, lm, shapes = _follow(still, box="fit", hold=0.05)
    tracked = np.array(lm.boxes[1:])  # the first call is the detector's box
    assert f.held == 29 and (tracked == tracked[0]).all()  # the detection's box, kept: one initialisation
    assert np.ptp(shapes, axis=0).max() == 0  # so the points of a still face do not move at all
    # without hysteresis the box is re-derived from each shape: it changes (the start pulls the points)
    f0, lm0, shapes0 = _follow(still, box="fit", hold=0.0)
    assert f0.held == 0 and len({tuple(b) for b in lm0.boxes}) > 1
    # a moving face: the box follows once the motion exceeds hold x inter-ocular (40 px here: 2 px)
    moving = np.stack([200 + 0.5 * np.arange(30), np.full(30, 150.0)], axis=1)
    fm, lmm, shapes_m = _follow(moving, box="fit", hold=0.05)
    assert 0 < fm.held < 29 and len({tuple(b) for b in lmm.boxes}) > 3
    assert np.abs(shapes_m[-1] - (moving[-1] + TEMPLATE * 20)).max() < 10  # still on the face


def test_shape_and_fit_boxes_both_follow_smooth_motion():
    path = np.stack([100 + 2.0 * np.arange(40), 80 + 1.0 * np.arange(40)], axis=1)
    for box in ("shape", "fit"):
        f, _, shapes = _follow(path, box=box, hold=0.0)
        assert f.redetections == 0
        assert np.abs(shapes - (path[:, None] + TEMPLATE * 20)).max() < 12


def test_settings_of_the_variants_are_validated():
    assert TrackerSettings.from_options({"box": "shape", "hold": "0.1", "one_euro": "true"}).one_euro is True
    with pytest.raises(ConfigError, match="tracking.box='mean': expected one of shape, fit"):
        TrackerSettings(box="mean")
    with pytest.raises(HarnessError, match="hold"):
        TrackerSettings(hold=2.0)
    with pytest.raises(HarnessError, match="euro_min_cutoff"):
        TrackerSettings(euro_min_cutoff=0.0)


# ------------------------------------------------------------------ the one-euro filter
def _reference_one_euro(xs, min_cutoff, beta, d_cutoff):
    """Casiez et al.'s 1-D filter transcribed from the paper's pseudo-code (sampling period 1)."""
    def a(fc):
        tau = 1.0 / (2 * math.pi * fc)
        return 1.0 / (1.0 + tau)

    out, x_prev, dx_prev = [], None, 0.0
    for x in xs:
        if x_prev is None:
            x_prev = x
            out.append(x)
            continue
        dx = a(d_cutoff) * (x - x_prev) + (1 - a(d_cutoff)) * dx_prev
        fc = min_cutoff + beta * abs(dx)
        y = a(fc) * x + (1 - a(fc)) * x_prev
        out.append(y)
        x_prev, dx_prev = y, dx
    return np.array(out)


@pytest.mark.parametrize("beta", [0.0, 0.7, 30.0])
def test_one_euro_matches_the_papers_filter_on_one_point(beta):
    rng = np.random.default_rng(1)
    xs = np.cumsum(rng.normal(0, 1, 60)) + np.r_[np.zeros(30), np.full(30, 25.0)]  # noise and a step
    filt = OneEuroFilter(0.05, beta, 0.1)
    got = np.array([filt(np.array([[x, 0.0]]), 1.0)[0, 0] for x in xs])
    np.testing.assert_allclose(got, _reference_one_euro(xs, 0.05, beta, 0.1), rtol=1e-12, atol=1e-12)


def test_one_euro_named_edge_cases():
    filt = OneEuroFilter(0.05, 5.0, 0.05)
    shape = np.array([[10.0, 20.0], [30.0, 20.0]])
    np.testing.assert_array_equal(filt(shape, 20.0), shape)  # the first frame passes
    np.testing.assert_allclose(filt(shape, 20.0), shape)  # a constant shape stays where it is
    assert np.isnan(filt(np.full((2, 2), np.nan), 20.0)).all()  # no shape: passes, and resets
    np.testing.assert_array_equal(filt(shape + 100, 20.0), shape + 100)  # after a reset: passes again
    # beta 0: a plain exponential filter with alpha(min_cutoff)
    plain = OneEuroFilter(0.05, 0.0, 0.05)
    plain(shape, 20.0)
    np.testing.assert_allclose(plain(shape + 10, 20.0), shape + 10 * alpha(0.05))
    # scale: the same motion in a face twice the size moves the cut-off as half the speed does
    a, b = OneEuroFilter(0.05, 5.0, 0.05), OneEuroFilter(0.05, 5.0, 0.05)
    a(shape, 20.0), b(2 * shape, 40.0)
    np.testing.assert_allclose(2 * a(shape + 3, 20.0), b(2 * shape + 6, 40.0))


def test_one_euro_lowers_the_jitter_of_a_noisy_still_shape():
    from harness.metrics.tracking import frame_jitter

    rng = np.random.default_rng(2)
    raw = TEMPLATE * 20 + 200 + rng.normal(0, 0.8, (80, 5, 2))
    filt = OneEuroFilter(0.05, 5.0, 0.05)
    smooth = np.stack([filt(s, _iod(s)) for s in raw])
    norm = np.full(80, 40.0)
    assert np.nanmean(frame_jitter(smooth, norm)) < 0.5 * np.nanmean(frame_jitter(raw, norm))


# ------------------------------------------------------------------ dlib's mean shape
def test_dlib_mean_shapes_are_read_from_the_model_files(tmp_path):
    pytest.importorskip("dlib")
    from facebench_plugins.landmarkers.dlib_shape import build_5, build_68, read_mean_shape

    m68 = build_68().mean_shape
    assert m68.shape == (68, 2) and -0.1 < m68.min() and m68.max() < 1.2
    assert m68[36, 0] < m68[45, 0] and m68[30, 1] < m68[33, 1] < m68[51, 1] < m68[8, 1]  # eyes, nose, mouth, chin
    assert abs(m68[[36, 45], 0].mean() - 0.5) < 0.01  # symmetric about the box's centre line
    lm5 = build_5()
    assert isinstance(lm5, BoxInitialisedLandmarker) and lm5.mean_shape.shape == (5, 2)
    assert lm5.mean_shape[0, 0] > lm5.mean_shape[2, 0]  # dlib_5 starts with the image-right eye
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\x01\x02not a predictor")
    with pytest.raises(HarnessError, match="not a dlib shape predictor of 68 points"):
        read_mean_shape(str(bad), 68)
    with pytest.raises(HarnessError, match="not a dlib shape predictor of 5 points"):
        read_mean_shape(str(build_68().weights_path), 5)


# ------------------------------------------------------------------ harness data video --track
@pytest.fixture(scope="module")
def clip():
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    return need_data("video/short_hamilton_clip.mp4")


def _video(capsys, tmp_path, clip, name, *args):
    from harness.cli import main

    out = tmp_path / name
    rc = main(["data", "video", str(clip), "-o", str(out), "--detector", "yunet", "--max-frames", "40",
               "--no-progress", *args])
    got = capsys.readouterr()
    return rc, got.out + got.err, out


def test_data_video_track_extracts_aligned_faces_with_the_tracker(capsys, tmp_path, clip):
    need_data("weights/yunet/face_detection_yunet_2023mar.onnx")
    rc, text, out = _video(capsys, tmp_path, clip, "tracked", "--landmarker", "dlib_68", "--track",
                           "--orientation", "first")
    assert rc == 0, text
    rows = list(csv.DictReader(open(out / "faces.csv")))
    assert len(rows) == 40 and [int(x["frame"]) for x in rows] == list(range(40))
    by = [x["found_by"] for x in rows]
    # detected once, then followed through the first shot; later the starts' disagreement (the default
    # max_start_spread) hands some frames back to the detector
    assert by[0] == "detector" and by[:20].count("tracker") >= 17 and by.count("tracker") >= 18
    assert "found by" in text and "tracker" in text
    from harness.formats.images import read_image

    crops = [read_image(out / x["file"]) for x in rows if x["file"]]
    assert len(crops) >= 36 and all(c.shape == (112, 112, 3) for c in crops)
    # the same frames detected every frame, aligned on dlib_68's points in the detector's box
    rc2, text2, out2 = _video(capsys, tmp_path, clip, "detected", "--landmarker", "dlib_68", "--orientation", "first")
    assert rc2 == 0, text2
    rows2 = list(csv.DictReader(open(out2 / "faces.csv")))
    assert {x["found_by"] for x in rows2 if x["file"]} == {"detector"}
    # frame 0: one detection, one landmarker on its box (multi-start is for tracked boxes only), one
    # alignment rule -> the very same crop
    np.testing.assert_array_equal(read_image(out / rows[0]["file"]), read_image(out2 / rows2[0]["file"]))
    # frames 0-10 (one shot, before the detector jumps to another face at frame 11): the tracked box
    # stays on the face detect-every-frame finds (fitted boxes are squarer than yunet's, so IoU < 1)
    from harness.metrics.detection import iou

    box = lambda r: np.array([[float(r[k]) for k in ("x1", "y1", "x2", "y2")]])  # noqa: E731
    overlap = [iou(box(a), box(b))[0, 0] for a, b in zip(rows[:11], rows2[:11])]
    assert min(overlap) > 0.5, overlap


def test_data_video_track_needs_a_landmarker(capsys, tmp_path, clip):
    rc, text, out = _video(capsys, tmp_path, clip, "x", "--track")
    assert rc == 2 and "--track follows the face with a landmarker" in text and not out.exists()
