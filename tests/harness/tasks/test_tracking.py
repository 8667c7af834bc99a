"""Landmark tracking (``--protocol tracking``): the follower on fakes, the config, and real runs on
the first 40 frames of ../shared/data/video/short_hamilton_clip.mp4 and a 300-VW clip sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.registry import Registry
from harness.tasks.tracking import Follower, TrackerSettings, rigid_points
from harness.types import Detections
from tests.conftest import need_data

TEMPLATE = np.array([[-1.0, -0.6], [1.0, -0.6], [0.0, 0.1], [-0.7, 0.8], [0.7, 0.8]])  # five points


class FaceAt:
    """Fake landmarker: the face of frame ``image[0, 0, 0]`` is at ``path[t]``; a box containing its
    centre gives the true five points, any other box a collapsed shape (a lost track)."""

    def __init__(self, path: np.ndarray, size: float = 20.0, ghost: bool = False) -> None:
        self.path, self.size, self.ghost, self.calls = path, size, ghost, 0

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        self.calls += 1
        c = self.path[int(image[0, 0, 0])]
        out = []
        for b in np.asarray(boxes, np.float64).reshape(-1, 4):
            inside = b[0] <= c[0] <= b[2] and b[1] <= c[1] <= b[3]
            if not inside and self.ghost:  # a plausible face where there is none (as dlib fits any region)
                out.append((b[:2] + b[2:]) / 2 + TEMPLATE * self.size)
            else:
                out.append(c + TEMPLATE * (self.size if inside else 0.5))
        return np.asarray(out, np.float32)


class BoxAt:
    """Fake detector: one box of side 50 around the face of the frame (its corner ``shift`` px off centre)."""

    def __init__(self, path: np.ndarray, shift: float = 0.0) -> None:
        self.path, self.shift, self.calls = path, shift, 0

    def detect(self, image: np.ndarray) -> Detections:
        self.calls += 1
        c = self.path[int(image[0, 0, 0])] + self.shift
        return Detections(np.r_[c - 25, c + 25][None], np.ones(1))


def _frames(n: int) -> list[np.ndarray]:
    out = []
    for t in range(n):
        f = np.zeros((300, 500, 3), np.uint8)
        f[0, 0, 0] = t
        out.append(f)
    return out


def _iod(shape: np.ndarray) -> float:
    return float(np.linalg.norm(shape[0] - shape[1]))


NO_CHECK = TrackerSettings(check_every=0)


def _run(path: np.ndarray, track: bool, settings: TrackerSettings = NO_CHECK, ghost: bool = False):
    lm, det = FaceAt(path, ghost=ghost), BoxAt(path)
    f = Follower(lm, det, 5, _iod, track=track, settings=settings, rigid=rigid_points("five"))
    shapes = np.stack([f.step(fr) for fr in _frames(len(path))])
    return f, det, shapes


def test_tracking_detects_once_on_smooth_motion_and_follows_the_face():
    path = np.stack([100 + 2.0 * np.arange(30), 80 + 1.0 * np.arange(30)], axis=1)
    f, det, shapes = _run(path, track=True)
    assert det.calls == 1 and f.redetections == 0
    np.testing.assert_allclose(shapes, path[:, None] + TEMPLATE * 20, atol=1e-4)
    f2, det2, shapes2 = _run(path, track=False)
    assert det2.calls == 30 and f2.detections == 30
    np.testing.assert_allclose(shapes2, shapes, atol=1e-4)


def test_a_jump_fails_the_quality_check_and_re_detects():
    path = np.stack([100 + 2.0 * np.arange(20), np.full(20, 80.0)], axis=1)
    path[10:] += [120, 50]  # the face jumps: the box from the last shape misses it
    f, det, shapes = _run(path, track=True)
    assert f.redetections == 1 and det.calls == 2
    np.testing.assert_allclose(shapes[10], path[10] + TEMPLATE * 20, atol=1e-4)


def test_the_periodic_check_catches_a_cut_the_shape_checks_cannot_see():
    path = np.stack([100 + 2.0 * np.arange(20), np.full(20, 80.0)], axis=1)
    path[7:] += [150, 60]  # a cut: the old box still yields a plausible (ghost) shape
    f, det, shapes = _run(path, track=True, ghost=True)
    assert det.calls == 1 and f.redetections == 0  # stuck on the ghost: shape checks alone pass
    assert np.abs(shapes[-1] - (path[-1] + TEMPLATE * 20)).max() > 50
    f, det, shapes = _run(path, track=True, settings=TrackerSettings(check_every=5), ghost=True)
    assert f.redetections == 1  # the check at frame 10 finds the face elsewhere and re-detects
    np.testing.assert_allclose(shapes[10:], path[10:, None] + TEMPLATE * 20, atol=1e-4)
    assert np.abs(shapes[8] - (path[8] + TEMPLATE * 20)).max() > 50  # frames 7-9: still on the ghost


def test_the_periodic_check_re_detects_a_drifted_track():
    path = np.stack([100 + 2.0 * np.arange(12), np.full(12, 80.0)], axis=1)
    f, det, _ = _run(path, track=True, settings=TrackerSettings(check_every=5))
    assert det.calls == 1 + 2 and f.redetections == 0  # frames 5 and 10 checked; the box still overlaps


def test_settings_are_validated_and_the_config_routes_tracking():
    assert TrackerSettings.from_options({"check_every": "7"}).check_every == 7
    with pytest.raises(ConfigError, match="unknown setting"):
        TrackerSettings.from_options({"check_evry": 1})
    with pytest.raises(HarnessError, match="min_inside"):
        TrackerSettings(min_inside=2)
    reg = Registry()
    runs = RunConfig(landmarkers=("dlib_68",), detectors=("yunet", "haar"), eval=("video=x.mp4",),
                     protocol="tracking", options={"tracking": {"check_every": 5}}).expand(reg)
    assert [(r.task, r.components.get("detector")) for r in runs] == [("tracking", "yunet"), ("tracking", "haar")]
    assert runs[0].options["tracking"] == {"check_every": 5}
    with pytest.raises(ConfigError, match="--landmarker"):
        RunConfig(detectors=("yunet",), eval=("video=x.mp4",), protocol="tracking").expand(reg)
    with pytest.raises(ConfigError, match="-o 'tracking'"):
        RunConfig(landmarkers=("dlib_68",), eval=("aflw2000=x",), options={"tracking": {"check_every": 5}}
                  ).expand(reg)


def _cli_run(tmp_path, *args):
    from harness.cli import cli

    r = CliRunner().invoke(cli, ["run", *args, "--protocol", "tracking", "--reports", str(tmp_path)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    return json.loads((run_dir / "results.json").read_text()), (run_dir / "index.html").read_text(), r.output


def test_real_clip_tracking_beside_detect_every_frame(tmp_path, monkeypatch):
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    clip = need_data("video/short_hamilton_clip.mp4")
    res, html, out = _cli_run(tmp_path, "--landmarker", "dlib_68", "--detector", "yunet", "--eval",
                              f"video={clip}", "-o", "video.max_frames=40")
    print(out)  # the side-by-side table (pytest -s)
    assert res["task"] == "tracking" and res["protocol"]["frames"] == 40
    rows = {r["mode"]: r for r in res["sections"]["tracking"]["rows"]}
    assert set(rows) == {"tracking", "detect_every_frame"}
    assert rows["detect_every_frame"]["detector_calls"] == 40
    assert rows["tracking"]["detector_calls"] < 40 and rows["tracking"]["with_shape"] > 0.9
    for r in rows.values():
        assert 0 < r["jitter_common"] < 50 and r["fps"] > 0 and r["common_frames"] > 30
    m = {x["name"]: x["value"] for x in res["metrics"]}
    assert {"jitter_tracking", "jitter_detect_every_frame", "fps_tracking", "fps_detect_every_frame"} <= set(m)
    assert "mode" in out and "detect_every_frame" in out and "jitter %" in out
    strip = res["sections"]["tracking"]["strip"]
    assert len(strip) == 6 and strip[0]["frame"] == 0 and strip[-1]["frame"] == 39
    assert 'id="tracking"' in html and 'id="tracking-table"' in html and html.count("data:image/jpeg;base64,") == 6
    assert 'data-plot="jitter"' in html


def test_annotated_clip_gives_nme_per_frame(tmp_path):
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    clip = need_data("landmarks/mmpose_samples/300vw/001")
    res, html, _ = _cli_run(tmp_path, "--landmarker", "dlib_68", "--eval", f"pts={clip}")
    rows = {r["mode"]: r for r in res["sections"]["tracking"]["rows"]}
    assert res["protocol"]["annotated"] and res["protocol"]["frames"] == 2
    for r in rows.values():
        assert r["nme"] is None or 0 < r["nme"] < 1
    assert len(res["curves"]["nme"]["tracking"]["y"]) == 2
    assert "NME (inter-ocular)" in html


def test_real_clip_default_tracking_is_steadier_than_detect_every_frame(tmp_path, monkeypatch):
    """Issue 20's done-when on the first 100 frames, dlib_68 with its own detector (dlib_hog) and the
    default settings (five start boxes, mean): tracking's points move less from frame to frame than
    detect-every-frame's on the frames both have, with fewer detector calls, without drifting from them
    (the full clip's numbers: docs/landmarks.md).  fps is printed, not asserted (no timed asserts)."""
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    clip = need_data("video/short_hamilton_clip.mp4")
    res, _, out = _cli_run(tmp_path, "--landmarker", "dlib_68", "--eval", f"video={clip}", "-o", "video.max_frames=100")
    print(out)
    rows = {r["mode"]: r for r in res["sections"]["tracking"]["rows"]}
    track, detect = rows["tracking"], rows["detect_every_frame"]
    assert res["protocol"]["detector"] == "dlib_hog" and "5 start boxes" in res["protocol"]["tracking_starts"]
    assert track["common_frames"] >= 30
    assert track["jitter_common"] < 0.85 * detect["jitter_common"], (track, detect)
    assert track["detector_calls"] < detect["detector_calls"]  # 66 of 100 here: the face is missing on many frames
    assert track["apart_median"] < 5 and track["apart_over_50"] == 0
