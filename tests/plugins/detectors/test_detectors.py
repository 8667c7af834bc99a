"""Every built-in detector: listed, builds, finds the faces of a real group photo.

``multiface.jpg`` (1200×630) holds 6 faces.  Counts seen when these tests
were written: haar 8 (2 false positives), dlib_hog 6, dlib_mmod 6
(upsample 0), mtcnn 6, retinaface 6, yunet 6.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.errors import DataError
from harness.registry import Registry
from harness.specs import OptionError
from tests.conftest import need_data

EXPECTED = {"cascade_cnn", "dlib_hog", "dlib_mmod", "haar", "mtcnn", "retinaface", "yunet"}

#: detector -> (options for the test, plausible face counts on multiface.jpg)
CASES = {
    "haar": ({}, range(5, 10)),
    "dlib_hog": ({}, range(6, 7)),
    "dlib_mmod": ({"upsample": 0}, range(5, 7)),
    "mtcnn": ({}, range(6, 7)),
    "retinaface": ({}, range(6, 7)),
    "yunet": ({}, range(6, 7)),
}


def _rgb(path):
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(scope="module")
def multiface():
    return _rgb(need_data("images/multiface.jpg"))


@pytest.fixture(scope="module")
def lfw_image():
    return _rgb(need_data("lfw_home/lfw_funneled/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"))


_built: dict[str, object] = {}


def _build(registry, name):
    if name not in _built:
        _built[name] = registry.build("detector", name, CASES[name][0])
    return _built[name]


def test_all_detectors_listed(registry):
    assert set(registry.names("detector")) == EXPECTED
    for spec in registry.specs("detector"):
        assert spec.summary and spec.paper and spec.license
        assert spec.factory.startswith(f"facebench_plugins.detectors.")


def test_spec_import_is_light():
    code = (
        "import sys, facebench_plugins.detectors as d; d.register_detectors(); "
        "bad = {'dlib','cv2','torch','onnxruntime'} & set(sys.modules); print(bad); sys.exit(bool(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_detects_the_faces_of_a_group_photo(registry, multiface, name):
    det = _build(registry, name)
    found = det.detect(multiface)
    assert len(found) in CASES[name][1], f"{name} found {len(found)} faces on multiface.jpg"
    assert found.boxes.shape == (len(found), 4) and found.boxes.dtype == np.float32
    assert found.scores.shape == (len(found),)
    assert np.all(found.boxes[:, 2] > found.boxes[:, 0]) and np.all(found.boxes[:, 3] > found.boxes[:, 1])
    assert np.all(np.diff(found.scores) <= 0), "detections are sorted by score"
    h, w = multiface.shape[:2]
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
    assert np.all((centres >= 0) & (centres <= [w, h]))
    spec = registry.get("detector", name)
    if spec.landmarks:
        lm = found.landmarks
        assert lm.shape == (len(found), 5, 2)
        assert np.all(lm[:, 0, 0] < lm[:, 1, 0]), "left eye is left of right eye"
        assert np.all(lm[:, 3, 0] < lm[:, 4, 0]), "left mouth corner is left of right one"
        assert np.all(lm[:, :2, 1].max(1) < lm[:, 3:, 1].min(1)), "eyes above the mouth"
        inside = (lm >= found.boxes[:, None, :2] - 2) & (lm <= found.boxes[:, None, 2:] + 2)
        assert inside.all(), "landmarks lie in their box"
    else:
        assert found.landmarks is None


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_equals_single(registry, multiface, lfw_image, name):
    det = _build(registry, name)
    images = [lfw_image, multiface, lfw_image]
    batch = det.detect_batch(images)
    assert len(batch) == 3
    for img, got in zip(images, batch):
        one = det.detect(img)
        assert len(got) == len(one)
        np.testing.assert_allclose(got.boxes, one.boxes, atol=0.5)
    assert len(batch[0]) >= 1  # the LFW subject


@pytest.mark.parametrize("name", ["retinaface", "yunet", "dlib_hog"])
def test_landmarks_agree_with_mtcnn(registry, multiface, name):
    ref = _build(registry, "mtcnn").detect(multiface)
    got = _build(registry, name).detect(multiface)
    ref_c = (ref.boxes[:, :2] + ref.boxes[:, 2:]) / 2
    for box, lm in zip(got.boxes, got.landmarks):
        j = np.argmin(((ref_c - (box[:2] + box[2:]) / 2) ** 2).sum(1))
        iod = np.linalg.norm(ref.landmarks[j, 0] - ref.landmarks[j, 1])  # inter-ocular distance
        err = np.linalg.norm(lm - ref.landmarks[j], axis=1).max()
        assert err < 0.35 * iod, f"{name}: landmarks {err:.1f} px from MTCNN's (inter-ocular {iod:.1f})"


def test_empty_image_gives_no_faces(registry):
    blank = np.full((120, 160, 3), 127, np.uint8)
    for name in ("mtcnn", "retinaface", "yunet", "haar", "dlib_hog"):
        found = _build(registry, name).detect(blank)
        assert len(found) == 0 and found.boxes.shape == (0, 4)


def test_bad_input_is_rejected(registry):
    with pytest.raises(ValueError, match="uint8 RGB"):
        _build(registry, "yunet").detect(np.zeros((10, 10), np.uint8))


def test_options_are_validated(registry):
    with pytest.raises(OptionError):
        registry.validate_options("detector", "mtcnn", {"factor": "2"})
    with pytest.raises(OptionError):
        registry.validate_options("detector", "dlib_hog", {"landmarks": "shape5"})
    opts = registry.validate_options("detector", "mtcnn", {"thresholds": "0.5,0.6,0.7"})
    assert opts.thresholds == (0.5, 0.6, 0.7)


def test_missing_weights_say_where_to_put_them(registry, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        registry.build("detector", "retinaface", {"weights": str(tmp_path / "none.pth")})
    with pytest.raises(DataError, match="does not exist"):
        registry.build("detector", "mtcnn", {"weights_dir": str(tmp_path / "nowhere")})
