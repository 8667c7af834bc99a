"""``harness data``: pairs, rec / tfrecord with bad input, inspect, video orientation, mesh."""

from __future__ import annotations

import csv
import json
import pickle
import shutil

import numpy as np
import pytest

from harness.cli import main
from harness.formats.pairs import parse_pairs
from tests.conftest import need_data


def _run(capsys, *args):
    rc = main(["data", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def small_att(tmp_path):
    att = need_data("att_faces")
    root = tmp_path / "att"
    for i in range(1, 6):
        shutil.copytree(att / f"s{i}", root / f"s{i}")
    return root


def test_pairs_for_att_are_valid_lfw_format(capsys, tmp_path):
    att = need_data("att_faces")
    rc, out, _ = _run(capsys, "pairs", att, "-o", tmp_path / "p.txt", "--folds", "10", "--pairs-per-fold", "30")
    assert rc == 0 and "600 pairs over 40 identities" in out
    text = (tmp_path / "p.txt").read_text().splitlines()
    assert text[0] == "10\t30" and len(text) == 601
    pf = parse_pairs(tmp_path / "p.txt")
    assert all(((att / p.name1 / f"{p.n1}.pgm").is_file() and (att / p.name2 / f"{p.n2}.pgm").is_file())
               for p in pf.pairs)


def test_corrupt_image_fails_clearly_and_leaves_nothing(capsys, small_att, tmp_path):
    (small_att / "s2" / "3.pgm").write_bytes(b"P5\n92 112\n255\n" + b"\x00" * 10)  # truncated
    rc, _, err = _run(capsys, "rec", small_att, "-o", tmp_path / "out" / "train", "--no-progress")
    assert rc != 0 and "s2/3.pgm: corrupt or unsupported image" in err and "--skip-bad" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    rc, out, err = _run(capsys, "rec", small_att, "-o", tmp_path / "out" / "train", "--skip-bad", "--no-progress")
    assert rc == 0 and "skipped 1 bad item" in err and "49 images, 5 identities" in out
    rc, out, err = _run(capsys, "tfrecord", small_att, "-o", tmp_path / "t.tfrecord", "--skip-bad", "--no-progress")
    assert rc == 0 and "49 images" in out
    rc, out, _ = _run(capsys, "inspect", small_att, "--json", "--no-progress")
    info = json.loads(out)
    assert info["format"] == "att" and info["images"] == 50 and info["corrupt"] == 1
    assert "s2/3.pgm" in info["corrupt_items"][0]


def test_inspect_rec_and_truncated(capsys, small_att, tmp_path):
    assert _run(capsys, "rec", small_att, "-o", tmp_path / "train", "--no-progress")[0] == 0
    rc, out, _ = _run(capsys, "inspect", tmp_path / "train.rec", "--json", "--no-progress")
    info = json.loads(out)
    assert (info["format"], info["images"], info["identities"], info["identity_ranges"]) == ("rec", 50, 5, 5)
    assert info["image_sizes"] == {"112x112": 50} and info["corrupt"] == 0
    raw = (tmp_path / "train.rec").read_bytes()
    (tmp_path / "train.rec").write_bytes(raw[: len(raw) // 2])
    rc, out, _ = _run(capsys, "inspect", tmp_path / "train.rec", "--json", "--no-progress")
    info = json.loads(out)
    assert info["corrupt"] > 0 and "truncated" in info["corrupt_items"][0]


def test_inspect_refuses_malicious_bin(capsys, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([Evil(), b""], [True])))
    rc, _, err = _run(capsys, "inspect", tmp_path / "evil.bin")
    assert rc != 0 and "refused to load" in err and not marker.exists()


def test_bad_pairs_line_is_named(capsys, tmp_path):
    lfw = need_data("lfw_home")
    (tmp_path / "p.txt").write_text("1\t1\nAbel_Pacheco\t1\nAbel_Pacheco\t1\tAkhmed_Zakayev\t1\n")
    rc, _, err = _run(capsys, "bin", lfw / "lfw_funneled", tmp_path / "p.txt", "-o", tmp_path / "x.bin")
    assert rc != 0 and "p.txt, line 2: 2 fields" in err and not (tmp_path / "x.bin").exists()


def _write_video(path):
    import cv2

    from harness.formats.images import read_image

    frames = []
    for p in sorted(need_data("images/identities").glob("*/1.jpg")):
        img = read_image(p)
        s = 320 / max(img.shape[:2])
        img = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)))
        canvas = np.zeros((320, 320, 3), np.uint8)
        y, x = (320 - img.shape[0]) // 2, (320 - img.shape[1]) // 2
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = img
        frames.append(canvas)
    expected = []
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 320))
    # a frame stored rotated clockwise needs "left90" to be upright again, etc.
    for f in frames:
        for code, fix in ((None, "none"), (cv2.ROTATE_90_CLOCKWISE, "left90"),
                          (cv2.ROTATE_90_COUNTERCLOCKWISE, "right90"), (cv2.ROTATE_180, "180")):
            g = f if code is None else cv2.rotate(f, code)
            writer.write(np.ascontiguousarray(g[:, :, ::-1]))
            expected.append(fix)
    writer.release()
    return expected


def test_video_orientation_fix(capsys, tmp_path, fresh_registry):
    if "yunet" not in fresh_registry.names("detector"):
        pytest.skip("the yunet detector plugin is not installed yet")
    need_data("weights/yunet/face_detection_yunet_2023mar.onnx")
    expected = _write_video(tmp_path / "v.avi")
    rc, out, _ = _run(capsys, "video", tmp_path / "v.avi", "-o", tmp_path / "faces", "--detector", "yunet",
                      "--no-progress")
    assert rc == 0, out
    rows = list(csv.DictReader(open(tmp_path / "faces" / "faces.csv")))
    assert [r["orientation"] for r in rows] == expected
    assert all((tmp_path / "faces" / r["file"]).is_file() for r in rows)
    rc, out, _ = _run(capsys, "inspect", tmp_path / "v.avi", "--json")
    assert json.loads(out)["video"]["frames"] == len(expected)


def test_mesh_is_deterministic_and_writes_masks(capsys, tmp_path):
    faces = tmp_path / "faces"
    src = need_data("lfw_home/lfw_funneled/Abel_Pacheco")
    shutil.copytree(src, faces / "Abel_Pacheco")
    for out in ("m1", "m2"):
        rc, text, _ = _run(capsys, "mesh", faces, "-o", tmp_path / out, "--seed", "5", "--no-progress")
        assert rc == 0
    a = sorted(p.relative_to(tmp_path / "m1") for p in (tmp_path / "m1").rglob("*.png"))
    assert len(a) == 2 * len(list(src.iterdir()))
    for rel in a:
        assert (tmp_path / "m1" / rel).read_bytes() == (tmp_path / "m2" / rel).read_bytes()
    from harness.formats.images import read_image

    mask = read_image(tmp_path / "m1" / "Abel_Pacheco" / "Abel_Pacheco_0001_mask.png")
    assert set(np.unique(mask)) <= {0, 255} and 0.02 < (mask[..., 0] > 0).mean() < 0.6
    rc, _, err = _run(capsys, "mesh", faces, "-o", tmp_path / "m1")
    assert rc != 0 and "--overwrite" in err
