"""harness.align: the similarity transform against skimage, template geometry, crops."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.align import (
    TEMPLATES,
    align,
    choose_face,
    fallback_crop,
    get_template,
    similarity_transform,
    transform_points,
)
from harness.types import Detections

skimage_transform = pytest.importorskip("skimage.transform")


def _skimage_matrix(src, dst):
    cls = skimage_transform.SimilarityTransform
    if hasattr(cls, "from_estimate"):  # skimage >= 0.26
        t = cls.from_estimate(src, dst)
        assert t, "skimage estimate failed"
    else:
        t = cls()
        assert t.estimate(src, dst)
    return t.params


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12))
def test_matches_skimage_on_random_points(seed, n):
    rng = np.random.default_rng(seed)
    src = rng.uniform(-100, 300, size=(n, 2))
    dst = rng.uniform(-100, 300, size=(n, 2))
    if np.ptp(src, axis=0).max() < 1e-3:
        return
    ours = similarity_transform(src, dst)
    ref = _skimage_matrix(src, dst)
    np.testing.assert_allclose(ours, ref, atol=1e-7 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("angle_deg", [0.0, 15.0, -30.0, 90.0, 179.0, -135.0])
@pytest.mark.parametrize("scale", [0.25, 1.0, 3.7])
def test_recovers_known_rotation_scale_translation(angle_deg, scale):
    rng = np.random.default_rng(7)
    src = rng.uniform(0, 250, size=(5, 2))
    a = math.radians(angle_deg)
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    t = np.array([12.5, -40.0])
    dst = scale * src @ R.T + t
    M = similarity_transform(src, dst)
    np.testing.assert_allclose(M[:2, :2], scale * R, atol=1e-9)
    np.testing.assert_allclose(M[:2, 2], t, atol=1e-7)
    np.testing.assert_allclose(transform_points(M, src), dst, atol=1e-7)
    np.testing.assert_allclose(M, _skimage_matrix(src, dst), atol=1e-8)


def test_never_reflects():
    # dst is a mirror image of src: the best similarity has det > 0 anyway.
    src = np.array([[0.0, 0], [10, 0], [5, 8], [1, 15], [9, 15]])
    dst = src * np.array([-1.0, 1.0])
    M = similarity_transform(src, dst)
    assert np.linalg.det(M[:2, :2]) > 0
    np.testing.assert_allclose(M, _skimage_matrix(src, dst), atol=1e-9)


def test_degenerate_points_give_nan():
    src = np.ones((5, 2))
    assert np.isnan(similarity_transform(src, TEMPLATES["arcface_112"].array)).all()
    with pytest.raises(ValueError, match="degenerate"):
        align(np.zeros((50, 50, 3), np.uint8), src)


def test_template_geometry():
    arc = get_template("arcface_112")
    sph = get_template("sphereface_112x96")
    assert arc.size == (112, 112) and sph.size == (112, 96)
    np.testing.assert_allclose(
        arc.array,
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    )
    np.testing.assert_allclose(
        sph.array,
        [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]],
    )
    for tpl in (arc, sph):
        p = tpl.array
        h, w = tpl.size
        assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0]  # image-left before image-right
        assert p[:2, 1].max() < p[2, 1] < p[3:, 1].min()  # eyes above nose above mouth
        assert abs(p[:, 0].mean() - w / 2) < 1.0  # horizontally centred
        assert (p >= 0).all() and (p[:, 0] < w).all() and (p[:, 1] < h).all()
        assert tpl.source
    with pytest.raises(KeyError, match="arcface_112"):
        get_template("nope")


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_align_puts_landmarks_on_template(template):
    """Paint five dots, move them by a known similarity, align back: dots land on the template."""
    tpl = TEMPLATES[template]
    a = math.radians(20)
    s = 2.3
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = s * tpl.array @ R.T + np.array([60.0, 20.0])
    yy, xx = np.mgrid[:400, :400]
    for k, (x, y) in enumerate(pts):
        image = np.zeros((400, 400, 3), np.uint8)
        image[(xx - x) ** 2 + (yy - y) ** 2 <= 16] = 255  # one dot per image
        crop = align(image, pts, template)
        assert crop.shape == (*tpl.size, 3) and crop.dtype == np.uint8
        weight = crop[..., 0].astype(np.float64)
        assert weight.sum() > 0, f"dot {k} missing"
        cy, cx = np.mgrid[: tpl.size[0], : tpl.size[1]]
        # pixel centres: warpAffine maps pixel index i to coordinate i
        mx, my = (weight * cx).sum() / weight.sum(), (weight * cy).sum() / weight.sum()
        tx, ty = tpl.array[k]
        assert abs(mx - tx) < 0.5 and abs(my - ty) < 0.5, (k, mx, my, tx, ty)


def test_align_rejects_wrong_landmarks():
    with pytest.raises(ValueError, match="5 landmarks"):
        align(np.zeros((10, 10, 3), np.uint8), np.zeros((4, 2)))


def test_choose_face_policies():
    det = Detections(
        boxes=[[0, 0, 120, 120], [100, 100, 150, 150], [200, 200, 240, 240]],
        scores=[0.9, 0.8, 0.99],
    )
    assert choose_face(det, (250, 250, 3), "center") == 1
    assert choose_face(det, (250, 250, 3), "largest") == 0
    assert choose_face(Detections.empty(), (250, 250, 3)) is None
    # equal distance from centre: the larger box wins
    tie = Detections(boxes=[[115, 115, 135, 135], [100, 100, 150, 150]], scores=[1, 0.5])
    assert choose_face(tie, (250, 250), "center") == 1
    with pytest.raises(ValueError, match="policy"):
        choose_face(det, (250, 250), "random")


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_fallback_crop_is_centred(template):
    tpl = TEMPLATES[template]
    image = np.zeros((250, 250, 3), np.uint8)
    image[100:150, 100:150] = 255  # a bright centre square
    crop = fallback_crop(image, template)
    assert crop.shape == (*tpl.size, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    h, w = tpl.size
    assert abs(xs.mean() - (w - 1) / 2) < 1.5 and abs(ys.mean() - (h - 1) / 2) < 1.5


def test_import_is_numpy_only():
    code = (
        "import sys, harness.align; "
        "bad = {'cv2', 'torch', 'dlib', 'tensorflow', 'onnxruntime'} & set(sys.modules); "
        "print(sorted(bad)); sys.exit(bool(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
