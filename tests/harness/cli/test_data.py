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


# ------------------------------------------------ one crop, one LFW finder
def test_data_crops_equal_evaluation_crops_for_a_landmarkless_detector(capsys, tmp_path, fresh_registry):
    """`harness data` and evaluation crop a box-only (haar) face with the same function."""
    from harness.formats.folders import scan_identities
    from harness.formats.images import decode_image, read_image
    from harness.formats.recordio import read_insightface_rec, unpack
    from harness.tasks._faces import locate_faces, make_crops
    from harness.types import ImageSet

    lfw = need_data("lfw_home/lfw_funneled")
    ids = tmp_path / "ids"
    for name in ("Abel_Pacheco", "Akhmed_Zakayev"):
        shutil.copytree(lfw / name, ids / name)
    from harness.formats.images import encode_image

    smooth = np.linspace(0, 255, 250 * 250 * 3).reshape(250, 250, 3).astype(np.uint8)  # no face to find
    (ids / "Zz_No_Face").mkdir()
    (ids / "Zz_No_Face" / "Zz_No_Face_0001.png").write_bytes(encode_image(smooth, ".png"))
    rc, out, err = _run(capsys, "rec", ids, "-o", tmp_path / "train", "--detector", "haar", "--size", "112",
                        "--encoding", "png", "--no-progress")
    assert rc == 0, err
    r = read_insightface_rec(tmp_path / "train.rec")
    data_crops = [decode_image(unpack(r.reader.read_idx(k), str(k))[1]) for k in r.keys]

    files = [str(f) for ident in scan_identities(ids) for f in ident.files]
    images = ImageSet(keys=files, labels=np.zeros(len(files), np.int64), loader=read_image)
    idx = np.arange(len(files))
    faces = locate_faces(images, idx, registry=fresh_registry, detector="haar", progress=False)
    assert np.isnan(faces.landmarks).all(), "haar gives boxes only: this test is about box crops"
    assert faces.found.sum() >= 3
    eval_crops, fallback = make_crops(images, idx, template="arcface_112", size=(112, 112), faces=faces,
                                      progress=False)
    assert len(data_crops) == len(eval_crops) and not faces.found[-1] and fallback[-1]
    for j in range(len(files)):  # box crops and the no-face fallback alike
        np.testing.assert_array_equal(data_crops[j], eval_crops[j], err_msg=files[j])
    assert "no_face_centre_crop: 1" in out


def _lfw_copy(dest, images_subdir):
    """A tiny LFW copy: two identities, one genuine and one impostor pair."""
    src = need_data("lfw_home/lfw_funneled")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "pairs.txt").write_text("1\t1\nAbel_Pacheco\t1\t2\nAbel_Pacheco\t1\tAkhmed_Zakayev\t3\n")
    for name in ("Abel_Pacheco", "Akhmed_Zakayev"):
        shutil.copytree(src / name, dest / images_subdir / name)
    return dest / images_subdir


def _layouts(tmp_path):
    from harness.formats.lfw_layout import IMAGE_DIRS

    cases = {}
    for d in IMAGE_DIRS:  # home/pairs.txt + home/<images folder>/
        home = tmp_path / f"home-{d}"
        cases[f"home+{d}"] = (home, _lfw_copy(home, d))
    home = tmp_path / "flat"  # pairs.txt beside the identity folders
    cases["flat"] = (home, _lfw_copy(home, ""))
    cases["pairs-file+lfw_funneled"] = (tmp_path / "home-lfw_funneled" / "pairs.txt",
                                        tmp_path / "home-lfw_funneled" / "lfw_funneled")
    cases["pairs-file+flat"] = (home / "pairs.txt", home)
    data_home = tmp_path / "data_home"  # scikit-learn's data_home holding lfw_home/
    cases["data_home"] = (data_home, _lfw_copy(data_home / "lfw_home", "lfw_funneled"))
    return cases


def test_inspect_accepts_every_layout_the_lfw_dataset_accepts(capsys, tmp_path, fresh_registry):
    cases = _layouts(tmp_path)
    for label, (path, image_dir) in cases.items():
        ds = fresh_registry.build("dataset", "lfw", path=str(path))
        pairs = ds.verification()
        assert len(pairs) == 2 and ds.image_dir == image_dir, label
        rc, out, err = _run(capsys, "inspect", path, "--json", "--no-progress", "--no-decode")
        assert rc == 0, (label, err)
        info = json.loads(out)
        n_files = sum(1 for p in image_dir.rglob("*.jpg"))
        assert info["format"] == "lfw", (label, info)
        assert info["images_folder"] == str(image_dir), label
        assert (info["identities"], info["images"]) == (2, n_files), label
        assert info["pairs"]["pairs"] == 2 and info["pairs"]["file"] == str(ds.pairs_file), label


def test_a_pairs_file_without_images_beside_it_is_inspected_as_pairs(capsys, tmp_path):
    (tmp_path / "p.txt").write_text("1\t1\nAbel_Pacheco\t1\t2\nAbel_Pacheco\t1\tAkhmed_Zakayev\t3\n")
    rc, out, _ = _run(capsys, "inspect", tmp_path / "p.txt", "--json")
    info = json.loads(out)
    assert rc == 0 and info["format"] == "pairs" and info["identities"] == 2 and info["pairs"]["pairs"] == 2


def test_data_package_has_one_module_per_subcommand():
    import importlib

    from harness.cli.data import command

    for name, cmd in command.commands.items():
        module = importlib.import_module(f"harness.cli.data.{name}")
        assert module.command is cmd, name


@pytest.mark.parametrize("label", [float("nan"), 1.7, b"x"])
def test_inspect_counts_a_tfrecord_with_a_bad_label_as_corrupt(capsys, tmp_path, label):
    import cv2

    from harness.formats.tfrecord import IMAGE_KEY, LABEL_KEY, encode_example, write_tfrecord

    ok, png = cv2.imencode(".png", np.zeros((8, 8), np.uint8))
    records = [encode_example({IMAGE_KEY: png.tobytes(), LABEL_KEY: 0}),
               encode_example({IMAGE_KEY: png.tobytes(), LABEL_KEY: label})]
    write_tfrecord(tmp_path / "t.tfrecord", records)
    rc, out, err = _run(capsys, "inspect", tmp_path / "t.tfrecord", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["images"] == 1 and report["corrupt"] == 1
    assert "record 1" in report["corrupt_items"][0] and "unexpected" not in err
