"""dlib_resnet on real LFW pairs: genuine pairs closer than impostor pairs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.errors import DataError

pytest.importorskip("dlib")


def _load(path):
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _pairs(lfw_home, n_same: int, n_diff: int):
    """The first ``n_same`` genuine and ``n_diff`` impostor pairs of View 2 fold 1."""
    lines = (lfw_home / "pairs.txt").read_text().split("\n")[1:601]
    root = lfw_home / "lfw_funneled"
    f = lambda name, i: root / name / f"{name}_{int(i):04d}.jpg"  # noqa: E731
    same = [(f(p[0], p[1]), f(p[0], p[2])) for p in (l.split() for l in lines[:300])][:n_same]
    diff = [(f(p[0], p[1]), f(p[2], p[3])) for p in (l.split() for l in lines[300:600])][:n_diff]
    return same, diff


@pytest.fixture(scope="module")
def recognizer():
    from harness.registry import Registry

    return Registry().build("recognizer", "dlib_resnet")


@pytest.fixture(scope="module")
def hog():
    import dlib

    return dlib.get_frontal_face_detector()


def _embed(recognizer, hog, path):
    from harness.align import choose_face
    from harness.types import Detections

    img = _load(path)
    rects, scores, _ = hog.run(img, 1, 0.0)
    if len(rects) == 0:
        boxes = np.array([[0, 0, img.shape[1], img.shape[0]]], np.float32)
    else:
        det = Detections([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], scores)
        boxes = det.boxes[[choose_face(det, img.shape, "center")]]
    return recognizer.embed_faces(img, boxes)[0]


def test_spec_metadata():
    from harness.registry import Registry

    spec = Registry().get("recognizer", "dlib_resnet")
    assert spec.published == {"lfw_accuracy": 0.9938, "lfw_std": 0.0027, "threshold": 0.6, "jitters": 100}
    assert spec.distance == "euclidean" and spec.embedding_size == 128
    assert spec.alignment == "dlib_chip" and spec.input_size == (150, 150)


def test_genuine_pairs_closer_than_impostors(recognizer, hog, lfw_home):
    same, diff = _pairs(lfw_home, 8, 8)
    d_same = [np.linalg.norm(_embed(recognizer, hog, a) - _embed(recognizer, hog, b)) for a, b in same]
    d_diff = [np.linalg.norm(_embed(recognizer, hog, a) - _embed(recognizer, hog, b)) for a, b in diff]
    # dlib's 0.6 convention separates these real pairs, and every genuine
    # distance is below the median impostor one.
    assert np.median(d_same) < 0.6 < np.median(d_diff), (d_same, d_diff)
    assert max(d_same) < np.median(d_diff)
    assert sum(d < 0.6 for d in d_same) + sum(d >= 0.6 for d in d_diff) >= 14


def test_embed_of_chips_equals_embed_faces(recognizer, lfw_home):
    img = _load(lfw_home / "lfw_funneled" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg")
    boxes = np.array([[67, 80, 176, 188]], np.float32)
    chips = recognizer.chips(img, boxes)
    assert chips[0].shape == (150, 150, 3) and chips[0].dtype == np.uint8
    a = recognizer.embed(chips)
    b = recognizer.embed_faces(img, boxes)
    assert a.shape == (1, 128) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.isfinite(a).all() and np.linalg.norm(a) > 0.1
    assert recognizer.embed([]).shape == (0, 128)
    assert recognizer.embed_faces(img, np.zeros((0, 4))).shape == (0, 128)
    # other crop sizes are resized to 150x150
    assert recognizer.embed([chips[0][::2, ::2]]).shape == (1, 128)


def test_missing_weights_is_a_clear_error(tmp_path):
    from harness.registry import Registry

    with pytest.raises(DataError, match="does not exist"):
        Registry().build("recognizer", "dlib_resnet", {"weights": str(tmp_path / "nope.dat")})


def test_spec_import_is_light():
    code = (
        "import sys, facebench_plugins.recognizers as r; r.register_recognizers(); "
        "bad = {'dlib','cv2','torch'} & set(sys.modules); sys.exit(bool(bad))"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_describe_states_the_files_and_what_it_takes(recognizer):
    from harness.registry import Registry
    from harness.tasks._manifest import recognizer_manifest

    d = recognizer.describe()
    spec = Registry().get("recognizer", "dlib_resnet")
    assert d["sha256"] == spec.weights[0].sha256 and d["shape_predictor_sha256"] == spec.weights[1].sha256
    assert d["input_size"] == [150, 150] and d["color"] == "rgb" and d["flip"] == "none"
    m = recognizer_manifest(recognizer, spec, template="dlib_chip", input_size=(150, 150), task_batch=64)
    assert m["model_sha256"] == spec.weights[0].sha256 and m["normalisation"].startswith("none")
    assert m["compared_runtimes"] == ["dlib", "opencv"] and m["batch_size"] == 64
