"""Landmark dataset readers on every real sample in ../shared/data/landmarks, and on WFLW text and
COFW .mat files written here in the published layouts (no sample of those formats is shipped)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataError
from harness.registry import Registry
from tests.conftest import need_data

pytest.importorskip("cv2")

_REG = Registry()
MMPOSE = ("300w", "300vw", "300wlp", "cofw", "wflw", "aflw", "lapa")
POINTS = {"300w": 68, "300vw": 68, "300wlp": 68, "cofw": 29, "wflw": 98, "aflw": 19, "lapa": 106}


def _open(name: str, path, **options):
    return _REG.build("dataset", name, options, path=str(path)).landmarks()


def _check_every_sample(ds, n_points: int) -> None:
    assert ds.samples, ds.protocol
    for s in ds.samples:
        img = ds.loader(s.key)
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape[2] == 3
        assert s.points.shape == (n_points, 2) and np.isfinite(s.points).all()
        x1, y1, x2, y2 = s.box
        assert x2 > x1 and y2 > y1
        inside = ((s.points >= -1) & (s.points <= [w + 1, h + 1])).all(axis=1)
        assert inside.mean() > 0.9, (s.key, inside.mean())  # annotations lie on the image
        centre = s.points.mean(axis=0)
        assert x1 <= centre[0] <= x2 and y1 <= centre[1] <= y2, s.key  # the box holds the face


def _json(folder: str) -> tuple[dict, Path]:
    root = need_data(f"landmarks/mmpose_samples/{folder}")
    path = next(root.glob("*.json"))
    return json.loads(path.read_text()), root


def test_aflw2000_every_image():
    root = need_data("landmarks/aflw2000_prnet")
    import scipy.io

    ds = _open("aflw2000", root)
    assert len(ds.samples) == len(list(root.glob("*.mat"))) == 16 and ds.scheme == "ibug_68"
    _check_every_sample(ds, 68)
    for s in ds.samples:
        pts = scipy.io.loadmat(s.info["annotation"])["pt3d_68"][:2].T
        assert np.array_equal(s.points, pts)
        assert np.allclose(s.box, [*pts.min(0), *pts.max(0)])  # the tight box of the 68 points
        assert -90 <= s.info["yaw_degrees"] <= 90
    assert "tight box" in ds.box_rule and "16 images" in ds.protocol


@pytest.mark.parametrize("folder", MMPOSE)
def test_coco_landmarks_every_mmpose_sample(folder):
    data, root = _json(folder)
    ds = _open("coco_landmarks", root)
    assert len(ds.samples) == len(data["annotations"])
    assert ds.scheme == {68: "ibug_68", 98: "wflw_98", 29: "cofw_29", 19: "aflw_19", 106: "lapa_106"}[POINTS[folder]]
    _check_every_sample(ds, POINTS[folder])


def test_pts_every_300vw_frame_and_agreement_with_the_json():
    root = need_data("landmarks/mmpose_samples/300vw")
    ds = _open("pts", root)
    assert len(ds.samples) == len(list(root.rglob("*.pts"))) == 4 and ds.scheme == "ibug_68"
    _check_every_sample(ds, 68)
    by_image = {Path(s.key).resolve(): s.points for s in ds.samples}
    coco = _open("coco_landmarks", root)
    for s in coco.samples:  # the same frames, annotated in both formats, agree point for point
        assert np.allclose(by_image[Path(s.key).resolve()], s.points, atol=1e-3)


def _write_wflw(tmp_path: Path) -> tuple[Path, list]:
    data, root = _json("wflw")
    files = {im["id"]: im["file_name"] for im in data["images"]}
    lines, expected = [], []
    for a in data["annotations"]:
        pts = np.asarray(a["keypoints"]).reshape(-1, 3)[:, :2]
        # the face box from mmpose's center / scale (one sample's "bbox" is half the face's height)
        (cx, cy), half = a["center"], 100 * a["scale"]
        lines.append(" ".join([*(f"{v:.6f}" for v in pts.ravel()),
                               *(f"{v:.3f}" for v in (cx - half, cy - half, cx + half, cy + half)),
                               "0", "1", "0", "0", "1", "0", files[a["image_id"]]]))
        expected.append((files[a["image_id"]], pts))
    ann = tmp_path / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    ann.parent.mkdir()
    ann.write_text("\n".join(lines) + "\n")
    return root, expected


def test_wflw_text_in_the_published_layout(tmp_path):
    images, expected = _write_wflw(tmp_path)
    ds = _open("wflw", tmp_path, images=str(images))
    assert ds.scheme == "wflw_98" and len(ds.samples) == len(expected) == 4
    _check_every_sample(ds, 98)
    for s, (name, pts) in zip(ds.samples, expected):
        assert Path(s.key).name == name and np.allclose(s.points, pts, atol=1e-5)
        assert s.info["attributes"] == {"pose": 0, "expression": 1, "illumination": 0, "make_up": 0,
                                        "occlusion": 1, "blur": 0}


def test_wflw_malformed_line_names_file_and_line(tmp_path):
    ann = tmp_path / "list_98pt_rect_attr_test.txt"
    ann.write_text(" ".join(["1.0"] * 200) + " x.jpg\n")
    with pytest.raises(DataError, match=r"line 1: 201 fields; a WFLW line has 207"):
        _open("wflw", ann)


def test_cofw_mat_in_the_published_layout(tmp_path):
    import cv2
    import scipy.io

    data, root = _json("cofw")
    files = {im["id"]: im["file_name"] for im in data["images"]}
    images, phis, boxes = [], [], []
    for k, a in enumerate(data["annotations"]):
        img = cv2.cvtColor(cv2.imread(str(root / files[a["image_id"]])), cv2.COLOR_BGR2RGB)
        images.append(img if k == 0 else img[:, :, 0])  # COFW mixes colour and grayscale images
        pts = np.asarray(a["keypoints"]).reshape(-1, 3)[:, :2]
        phis.append(np.r_[pts[:, 0], pts[:, 1], np.arange(29) % 2])
        boxes.append(a["bbox"])
    cell = np.empty((len(images), 1), dtype=object)
    for i, im in enumerate(images):
        cell[i, 0] = im
    mat = tmp_path / "COFW_test.mat"
    scipy.io.savemat(mat, {"IsT": cell, "phisT": np.asarray(phis), "bboxesT": np.asarray(boxes)})
    ds = _open("cofw", tmp_path)
    assert ds.scheme == "cofw_29" and len(ds.samples) == 2
    _check_every_sample(ds, 29)
    for s, p, b, im in zip(ds.samples, phis, boxes, images):
        assert np.allclose(s.points[:, 0], p[:29]) and np.allclose(s.points[:, 1], p[29:58])
        assert np.allclose(s.box, [b[0], b[1], b[0] + b[2], b[1] + b[3]])
        assert s.info["occluded"] == [bool(v) for v in np.arange(29) % 2]
        got = ds.loader(s.key)
        assert np.array_equal(got[:, :, 0], im if im.ndim == 2 else im[:, :, 0])


def test_cofw_v73_and_pts_errors_are_one_clear_line(tmp_path):
    v73 = tmp_path / "COFW_test_color.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: HDF5 schema 1.00 ." + b"\0" * 200)
    with pytest.raises(DataError, match="v7.3"):
        _open("cofw", v73)
    bad = tmp_path / "face.pts"
    bad.write_text("version: 1\nn_points: 68\n{\n1 2\n3 4\n}\n")
    with pytest.raises(DataError, match="n_points says 68 but the block holds 2"):
        _open("pts", tmp_path)
    (tmp_path / "a.json").write_text("{\"images\": []}")
    with pytest.raises(DataError, match="COCO-style"):
        _open("coco_landmarks", tmp_path / "a.json")


def test_landmark_datasets_declare_the_landmarks_task():
    for name in ("aflw2000", "pts", "wflw", "cofw", "coco_landmarks"):
        assert _REG.get("dataset", name).tasks == ("landmarks",)
