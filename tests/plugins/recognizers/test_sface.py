"""sface through facebench equals OpenCV's FaceRecognizerSF on real LFW faces.

Faces are found by YuNet (cv2.FaceDetectorYN, the detector OpenCV pairs with
SFace).  Two comparisons:

* the SAME crop (cv2's ``alignCrop``) fed to ``cv2.FaceRecognizerSF.feature``
  and to facebench's ``sface`` (onnxruntime, batched): equal to 1e-4;
* facebench's own alignment (:func:`harness.align.align` on the landmarks of
  facebench's ``yunet`` plugin) against cv2's ``alignCrop``: the embeddings'
  cosine is reported and must be ~1 (the two similarity fits agree).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_data

ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

N_IMAGES = 24


@pytest.fixture(scope="module")
def lfw_images() -> list:
    root = need_data("lfw_home") / "lfw_funneled"
    people = sorted(p for p in root.iterdir() if p.is_dir())[:40]
    paths = [f for p in people for f in sorted(p.glob("*.jpg"))]
    step = max(1, len(paths) // N_IMAGES)
    return paths[::step][:N_IMAGES]


@pytest.fixture(scope="module")
def weights() -> dict:
    return {
        "sface": need_data("weights/sface/face_recognition_sface_2021dec.onnx"),
        "yunet": need_data("weights/yunet/face_detection_yunet_2023mar.onnx"),
    }


@pytest.fixture(scope="module")
def faces(lfw_images, weights):
    """(image RGB, cv2 YuNet row, cv2-aligned crop RGB, cv2 feature, person) per image."""
    det = cv2.FaceDetectorYN.create(str(weights["yunet"]), "", (320, 320), 0.6, 0.3, 5000)
    sf = cv2.FaceRecognizerSF.create(str(weights["sface"]), "")
    out = []
    for path in lfw_images:
        bgr = cv2.imread(str(path))
        det.setInputSize((bgr.shape[1], bgr.shape[0]))
        _ok, rows = det.detect(bgr)
        if rows is None or len(rows) == 0:
            continue
        row = rows[int(np.argmax(rows[:, 14]))]
        crop_bgr = sf.alignCrop(bgr, row)
        out.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), row, cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB),
                    np.asarray(sf.feature(crop_bgr), np.float32).ravel(), path.parent.name))
    assert len(out) >= N_IMAGES - 2, "YuNet found too few faces in LFW"
    return out


@pytest.fixture(scope="module")
def registry():
    from harness.registry import Registry

    return Registry()


@pytest.fixture(scope="module")
def sface(registry):
    return registry.build("recognizer", "sface", {"batch_size": "8", "threads": "1"})


def test_spec_holds_full_digest_and_fixed_preprocessing(registry, weights):
    from harness.weights import sha256_file

    spec = registry.get("recognizer", "sface")
    (w,) = spec.weights
    assert len(w.sha256) == 64 and w.sha256 == sha256_file(weights["sface"])
    pre = spec.describe()["meta"]["preprocessing"]
    assert pre == {"input_size": [112, 112], "color": "rgb", "scale": 1.0, "mean": [0.0, 0.0, 0.0],
                   "std": [1.0, 1.0, 1.0], "layout": "nchw", "alignment": "arcface_112"}
    assert spec.embedding_size == 128 and spec.distance == "cosine"
    assert spec.published["lfw_accuracy"] == 0.9940


def test_equals_cv2_feature_on_the_same_crop(sface, faces):
    crops = [f[2] for f in faces]
    ref = np.stack([f[3] for f in faces])
    got = sface.embed(crops)
    assert got.shape == (len(crops), 128)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_batched_equals_one_at_a_time(registry, sface, faces):
    assert sface.batching.startswith("dynamic"), sface.batching
    single = registry.build("recognizer", "sface", {"rewrite": "false", "threads": "1"})
    assert single.batching.startswith("one image per call")
    crops = [f[2] for f in faces]
    np.testing.assert_allclose(sface.embed(crops), single.embed(crops), atol=1e-5, rtol=0)


def test_facebench_alignment_matches_cv2_align_crop(registry, sface, faces):
    from harness.align import align

    yunet = registry.build("detector", "yunet")
    cosines = []
    for rgb, row, cv2_crop, _feat, _who in faces:
        det = yunet.detect(rgb)
        j = int(np.argmin(np.abs(det.boxes[:, :2] - row[:2]).sum(axis=1)))
        ours = align(rgb, det.landmarks[j], "arcface_112")
        a, b = sface.embed([ours, cv2_crop])
        cosines.append(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    print(f"facebench vs cv2 alignCrop: cosine min {min(cosines):.6f} mean {np.mean(cosines):.6f}")
    assert min(cosines) > 0.999


def test_genuine_pairs_score_above_impostors(sface, faces):
    emb = sface.embed([f[2] for f in faces])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    who = [f[4] for f in faces]
    sims = emb @ emb.T
    same = [sims[i, j] for i in range(len(who)) for j in range(i + 1, len(who)) if who[i] == who[j]]
    diff = [sims[i, j] for i in range(len(who)) for j in range(i + 1, len(who)) if who[i] != who[j]]
    assert same and diff
    # OpenCV Zoo's cosine threshold is 0.363
    assert np.median(same) > 0.363 > np.median(diff)


def test_wrong_weights_file_is_one_clear_error(registry, tmp_path):
    from harness.errors import DataError

    bad = tmp_path / "face_recognition_sface_2021dec.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="sha256") as info:
        registry.build("recognizer", "sface", {"weights": str(bad)})
    assert "\n" not in str(info.value)
