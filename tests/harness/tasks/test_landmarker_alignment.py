"""``--landmarker NAME`` in the face pipeline: the detector finds the box, the landmarker places the five
points alignment uses (harness/tasks/_landmark_points.py, _faces.py, _pipeline.py, the grid in config.py,
and ``harness data``'s FaceCropper).

Real data: LFW photos with yunet + dlib_5 / dlib_68, and the 68-point AFLW2000-3D / 300-W annotations
for the completion of dlib_5's points to the five.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.metrics import landmarks as L
from harness.tasks._landmark_points import REFERENCE_68, alignment_points, check_scheme, five_rule
from tests.conftest import need_data

# ibug_68 indices of dlib_5's points, in dlib_5's order (right outer, right inner, left outer, left inner, subnasale)
DLIB5_FROM_68 = [45, 42, 36, 39, 33]


def _reference68() -> np.ndarray:
    ref = np.zeros((68, 2))
    for i, xy in REFERENCE_68.items():
        ref[i] = xy
    return ref


def _similarity(points: np.ndarray, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, s], [-s, c]]) + np.asarray(shift)


# --------------------------------------------------------------- the five points of each scheme
def test_a_scheme_with_the_five_gives_its_own_points():
    rng = np.random.default_rng(0)
    shape = rng.uniform(0, 100, (68, 2))
    five = alignment_points(shape, "ibug_68")
    np.testing.assert_allclose(five, L.get_scheme("ibug_68").semantic(shape, L.COMMON_FIVE), rtol=1e-6)
    np.testing.assert_allclose(five[0], shape[36:42].mean(axis=0), rtol=1e-6)  # eye centre: its contour's mean
    assert five_rule("ibug_68").startswith("the scheme's own")
    five_pts = rng.uniform(0, 100, (5, 2))
    np.testing.assert_allclose(alignment_points(five_pts, "five"), five_pts, rtol=1e-6)


def test_dlib5_completes_the_reference_exactly_under_any_similarity():
    """Named edge case: dlib_5 points of the reference face itself, rotated, scaled and moved, complete to
    the reference's own five carried by the same similarity (the completion is equivariant)."""
    ref = _reference68()
    truth = L.get_scheme("ibug_68").semantic(ref, L.COMMON_FIVE)
    for angle, scale, shift in ((0.0, 1.0, (0, 0)), (0.4, 180.0, (30, -12)), (-1.2, 55.0, (400, 300))):
        got = alignment_points(_similarity(ref[DLIB5_FROM_68], angle, scale, shift), "dlib_5")
        np.testing.assert_allclose(got, _similarity(truth, angle, scale, shift), atol=1e-3 * scale)
    assert "completed from dlib's mean face" in five_rule("dlib_5")


def test_dlib5_completion_on_real_68_point_annotations():
    """On real faces (AFLW2000-3D, 300-W): the five completed from the annotation's dlib_5 points lie near
    the annotation's own five; the eyes nearer than the mouth (the mouth comes from the reference)."""
    from facebench_plugins.datasets.aflw2000 import read_aflw2000_mat

    folder = need_data("landmarks/aflw2000_prnet")
    errors = []
    for mat in sorted(folder.glob("*.mat")):
        pts = read_aflw2000_mat(mat)[0]
        truth = L.get_scheme("ibug_68").semantic(pts, L.COMMON_FIVE)
        got = alignment_points(pts[DLIB5_FROM_68], "dlib_5")
        iod = np.linalg.norm(pts[36] - pts[45])
        errors.append(np.linalg.norm(got - truth, axis=1) / iod)
    err = np.array(errors)
    assert len(err) >= 10
    assert np.median(err[:, :2]) < 0.10  # eye centres from the eye corners
    assert np.median(err[:, 2:]) < 0.35  # nose tip and mouth corners completed (large poses in AFLW2000)
    assert np.median(err) < np.median(_naive_errors(folder))


def _naive_errors(folder) -> np.ndarray:
    """The baseline a completion must beat: the reference's five placed by the eye corners' centroid only
    (translation, the annotation's own inter-ocular scale), no fit."""
    from facebench_plugins.datasets.aflw2000 import read_aflw2000_mat

    ref = _reference68()
    out = []
    for mat in sorted(folder.glob("*.mat")):
        pts = read_aflw2000_mat(mat)[0]
        iod = np.linalg.norm(pts[36] - pts[45])
        scale = iod / np.linalg.norm(ref[36] - ref[45])
        five = L.get_scheme("ibug_68").semantic(ref, L.COMMON_FIVE) * scale
        five += pts[[36, 39, 42, 45]].mean(axis=0) - ref[[36, 39, 42, 45]].mean(axis=0) * scale
        out.append(np.linalg.norm(five - L.get_scheme("ibug_68").semantic(pts, L.COMMON_FIVE), axis=1) / iod)
    return np.array(out)


def test_named_edge_cases_of_the_points():
    assert np.isnan(alignment_points(np.full((5, 2), np.nan), "dlib_5")).all()  # no points
    assert np.isnan(alignment_points(np.ones((5, 2)), "dlib_5")).all()  # every point at one place
    assert np.isnan(alignment_points(np.ones((68, 2)), "ibug_68")).all()  # the same, in a scheme with the five
    with pytest.raises(ConfigError, match="returned 4 points per face, expected 5"):
        alignment_points(np.zeros((4, 2)), "dlib_5")
    with pytest.raises(ConfigError, match="--landmarker x: its points \\(lapa_106\\)"):
        check_scheme("lapa_106", "x")
    check_scheme("dlib_5", "dlib_5")


# --------------------------------------------------------------- the grid
def test_the_grid_puts_the_landmarker_beside_recognition_and_inpainting_runs():
    from harness.config import RunConfig
    from harness.registry import Registry

    reg = Registry()
    runs = RunConfig(landmarkers=("dlib_5", "dlib_68"), recognizers=("sface",), eval=("lfw=x",),
                     options={"dlib_5": {"shape_predictor": ""}}).expand(reg)
    assert [(r.task, r.components) for r in runs] == [
        ("recognition", {"recognizer": "sface", "landmarker": "dlib_5"}),
        ("recognition", {"recognizer": "sface", "landmarker": "dlib_68"})]
    assert runs[0].options == {"dlib_5": {"shape_predictor": ""}} and runs[0].config_hash() != runs[1].config_hash()
    ident = RunConfig(landmarkers=("dlib_5",), recognizers=("sface",), eval=("lfw=x",),
                      protocol="identification").expand(reg)
    assert ident[0].components["landmarker"] == "dlib_5" and ident[0].protocol == "identification"
    live = RunConfig(landmarkers=("dlib_5",), liveness=("lbp_svm",), eval=("spoof=x",)).expand(reg)  # issue 20
    assert [(r.task, r.components) for r in live] == [("liveness", {"liveness": "lbp_svm", "landmarker": "dlib_5"})]
    with pytest.raises(ConfigError, match="not of detection runs"):
        RunConfig(landmarkers=("dlib_5",), detectors=("yunet",), eval=("wider=x",)).expand(reg)
    assert RunConfig(landmarkers=("dlib_5",), eval=("aflw2000=x",)).expand(reg)[0].task == "landmarks"


def test_a_self_aligning_recognizer_refuses_a_landmarker():
    from harness.registry import Registry
    from harness.tasks._pipeline import _landmarker_plan

    with pytest.raises(ConfigError, match="--landmarker dlib_5 places alignment points, but the recognizer"):
        _landmarker_plan(Registry(), "dlib_5", {}, "dlib get_face_chip")
    assert _landmarker_plan(Registry(), None, None, "own").name is None


# --------------------------------------------------------------- real LFW photos
@pytest.fixture(scope="module")
def lfw_faces():
    pytest.importorskip("cv2")
    pytest.importorskip("dlib")
    need_data("weights/yunet/face_detection_yunet_2023mar.onnx")
    from harness.registry import Registry

    reg = Registry()
    images = reg.build("dataset", "lfw", {}, path=str(need_data("lfw_home"))).verification().images
    return reg, images, np.arange(0, 320, 20)  # 16 photos: two chunks of the pipeline


def test_on_lfw_the_landmarker_moves_the_crop_keys_the_cache_and_workers_match(tmp_path, lfw_faces):
    from harness.tasks._faces import face_crops, face_store

    reg, images, idx = lfw_faces
    kw = dict(registry=reg, detector="yunet", template="arcface_112", size=(112, 112), progress=False)
    plain = face_crops(images, idx, workers=0, cache_dir=tmp_path / "plain", **kw)
    serial = face_crops(images, idx, workers=0, cache_dir=tmp_path / "serial", landmarker="dlib_5", **kw)
    pool = face_crops(images, idx, workers=2, cache_dir=tmp_path / "pool", landmarker="dlib_5", **kw)
    assert pool.stages["workers"] == 2 and serial.stages["workers"] == 0
    # serial == parallel: crops, flags, the stated alignment, and the stores row for row
    for a, b in zip(serial.crops, pool.crops):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(serial.fallback, pool.fallback)
    assert serial.alignment == pool.alignment and "landmarker dlib_5" in serial.alignment
    (sa,), (sb,) = (tmp_path / "serial").glob("faces-*.npz"), (tmp_path / "pool").glob("faces-*.npz")
    assert sa.name == sb.name and "-lm-dlib_5-" in sa.name
    with np.load(sa) as za, np.load(sb) as zb:
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k])
        lm_rows = za["landmarks"]
    # the landmarker's points, not the detector's: other points, other crops, same boxes
    (sp,) = (tmp_path / "plain").glob("faces-*.npz")
    with np.load(sp) as zp:
        np.testing.assert_array_equal(zp["boxes"], np.load(sa)["boxes"])
        moved = np.linalg.norm(zp["landmarks"] - lm_rows, axis=-1).mean(axis=1)
    assert np.isfinite(moved).all() and np.median(moved) > 0.5
    differ = [not np.array_equal(a, b) for a, b in zip(plain.crops, serial.crops)]
    assert sum(differ) >= len(idx) - 1 and plain.alignment == "arcface_112"
    # the cache key: the landmarker and its options are part of it, the detector-points store is untouched
    keys = [str(images.keys[i]) for i in idx]
    stores = {face_store(images, keys, "yunet", {}, "center", tmp_path, *extra).name
              for extra in ((), ("dlib_5", {}), ("dlib_68", {}), ("dlib_5", {"shape_predictor": "x.dat"}))}
    assert len(stores) == 4
    # read back from the store: nothing detected again, the same crops
    again = face_crops(images, idx, workers=0, cache_dir=tmp_path / "serial", landmarker="dlib_5", **kw)
    assert again.stages["detected"] == 0
    for a, b in zip(serial.crops, again.crops):
        np.testing.assert_array_equal(a, b)


def test_harness_data_crops_with_a_landmarker_equal_the_evaluation_crops(tmp_path, lfw_faces):
    from harness.cli.data._common import FaceCropper
    from harness.registry import reset_registry
    from harness.tasks._faces import face_crops

    reg, images, idx = lfw_faces
    reset_registry(reg)
    try:
        cropper = FaceCropper("yunet", 112, landmarker="dlib_68")
        fc = face_crops(images, idx[:4], registry=reg, detector="yunet", template="arcface_112", size=(112, 112),
                        progress=False, landmarker="dlib_68")
        for j, i in enumerate(idx[:4]):
            np.testing.assert_array_equal(cropper(images.load(int(i))), fc.crops[j])
        with pytest.raises(ConfigError, match="needs a detector"):
            FaceCropper("none", 112, landmarker="dlib_68")
    finally:
        reset_registry(None)
