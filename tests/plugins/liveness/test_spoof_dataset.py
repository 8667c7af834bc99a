"""The ``spoof`` dataset layout: labels, species, splits, videos, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError, DataError

from facebench_plugins.datasets.spoof import SpoofOptions, build


def _img(path: Path, value: int = 100) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((24, 24, 3), value, np.uint8))


def test_layout_labels_species_splits(tmp_path):
    _img(tmp_path / "live" / "a.png")
    _img(tmp_path / "attack" / "print" / "b.png")
    for split in ("train", "dev", "test"):
        _img(tmp_path / split / "live" / "subj1" / "x.png")
        _img(tmp_path / split / "attack" / "replay" / "subj1" / "y.png")
        _img(tmp_path / split / "attack" / "print" / "z.jpg")
    (tmp_path / "train" / "live" / "notes.txt").write_text("ignored")
    rec = build(SpoofOptions(threshold_rule="bpcer20"), tmp_path).liveness()
    assert len(rec) == 11 and rec.splits() == ["", "dev", "test", "train"]
    assert rec.threshold_rule == "bpcer20" and rec.synthetic_attacks is False
    by_key = {Path(k).relative_to(tmp_path).as_posix(): (int(l), s, sp, sub) for k, l, s, sp, sub in
              zip(rec.images.keys, rec.labels, rec.species, rec.split, rec.subjects)}
    assert by_key["live/a.png"] == (1, "", "", "")
    assert by_key["attack/print/b.png"] == (0, "print", "", "")
    assert by_key["dev/live/subj1/x.png"] == (1, "", "dev", "subj1")
    assert by_key["test/attack/replay/subj1/y.png"] == (0, "replay", "test", "subj1")
    assert np.array_equal(rec.images.labels, rec.labels)
    assert rec.images.load(0).shape == (24, 24, 3)
    assert len(rec.indices("dev")) == 3


def test_synthesis_marker_and_videos(tmp_path):
    import cv2

    _img(tmp_path / "live" / "a.png")
    vid = tmp_path / "attack" / "replay" / "clip.avi"
    vid.parent.mkdir(parents=True)
    w = cv2.VideoWriter(str(vid), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    if not w.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG .avi")
    for i in range(25):
        w.write(np.full((24, 32, 3), 10 * i, np.uint8))
    w.release()
    (tmp_path / "synthesis.json").write_text(json.dumps({"synthetic_attacks": True, "note": "made up"}))
    rec = build(SpoofOptions(video_every=10, video_frames=0), tmp_path).liveness()
    assert rec.synthetic_attacks and rec.note == "made up"
    (video,) = rec.videos
    assert video["frames"] == 25 and video["frames_used"] == [0, 10, 20] and video["species"] == "replay"
    keys = [k for k in rec.images.keys if "#" in k]
    assert keys == [f"{vid}#0", f"{vid}#10", f"{vid}#20"]
    frame = rec.images.loader(keys[1])
    assert frame.shape == (24, 32, 3) and abs(int(frame.mean()) - 100) < 8
    capped = build(SpoofOptions(video_every=5, video_frames=2), tmp_path).liveness()
    assert capped.videos[0]["frames_used"] == [0, 5]


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a path"):
        build(SpoofOptions(), None)
    with pytest.raises(DataError, match="does not exist"):
        build(SpoofOptions(), tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        build(SpoofOptions(), tmp_path / "empty").liveness()
    _img(tmp_path / "loose" / "attack" / "b.png")
    with pytest.raises(DataError, match=r"attack/<species>/"):
        build(SpoofOptions(), tmp_path / "loose").liveness()
    with pytest.raises(ValueError, match="video_every"):
        SpoofOptions(video_every=0)
