"""Built-in landmarkers on the 16 real AFLW2000-3D images, end to end through ``harness run``.

Numbers measured here (dlib 19.24 shape predictors, ground-truth tight boxes, 16 images):
dlib_68 — 68-point NME 0.381 inter-ocular (median 0.196), 0.148 box, 0.097 inter-ocular on the
10 faces with |yaw| < 30 degrees; the profile faces (|yaw| 55-71 degrees) have a tiny 2-D
inter-ocular distance and 3-D-projected jaw points, so their inter-ocular NME is above 0.5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.registry import Registry
from harness.types import Landmarker
from tests.conftest import need_data

pytest.importorskip("cv2")
_REG = Registry()


def _aflw():
    root = need_data("landmarks/aflw2000_prnet")
    return root, _REG.build("dataset", "aflw2000", {}, path=str(root)).landmarks()


@pytest.fixture(scope="module")
def dlib68_run(tmp_path_factory):
    pytest.importorskip("dlib")
    root, _ = _aflw()
    from harness.cli import cli

    reports = tmp_path_factory.mktemp("reports")
    r = CliRunner().invoke(cli, ["run", "--landmarker", "dlib_68", "--eval", f"aflw2000={root}",
                                 "--reports", str(reports)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    (run_dir,) = (reports / "runs").iterdir()
    return json.loads((run_dir / "results.json").read_text()), (run_dir / "index.html").read_text(), r.output


def test_dlib_68_on_the_16_aflw2000_images(dlib68_run):
    results, _html, _out = dlib68_run
    m = {x["name"]: x["value"] for x in results["metrics"]}
    print({k: round(v, 4) for k, v in m.items() if v is not None})  # shown with pytest -s
    assert results["task"] == "landmarks" and results["protocol"]["faces"] == 16
    assert m["nme_68pt_box"] < 0.20 and m["nme_5pt_box"] < 0.20
    near_frontal = results["sections"]["landmarks"]["by_yaw"][0]
    assert near_frontal["yaw"] == "[0, 30]" and near_frontal["faces"] == 10 and near_frontal["nme"] < 0.12
    assert 0 < m["auc_68pt_at_0.08"] < 1 and 0 <= m["failure_rate_68pt_at_0.10"] <= m["failure_rate_68pt_at_0.08"]
    assert results["sections"]["landmarks"]["missed"] == 0
    assert "tight box" in results["protocol"]["boxes"] and "outer eye corners" in results["protocol"]["normaliser"]


def test_the_run_prints_nme_and_ced_and_the_page_says_it_is_a_sample(dlib68_run):
    results, html, out = dlib68_run
    assert "68pt NME (inter_ocular)" in out and "5pt NME (inter_ocular)" in out and "CED <=0.02" in out
    assert "a sample of 16 images, not the full AFLW2000-3D benchmark" in html
    assert 'id="landmarks-nme"' in html and "Cumulative error distribution" in html
    ced = results["curves"]["ced"]["68pt"]
    assert ced["y"][0] == 0.0 and ced["y"] == sorted(ced["y"]) and len(ced["x"]) == len(ced["y"])


def test_dlib_5_predicts_eye_corners_and_nose_base_in_dlib_order():
    pytest.importorskip("dlib")
    _root, ds = _aflw()
    lm = _REG.build("landmarker", "dlib_5")
    assert isinstance(lm, Landmarker)
    s = next(x for x in ds.samples if abs(x.info["yaw_degrees"]) < 10)
    pred = lm.predict(ds.loader(s.key), s.box[None])[0]
    truth = s.points[[45, 42, 36, 39, 33]]  # image-right eye outer, inner, image-left outer, inner, nose base
    iod = np.linalg.norm(s.points[36] - s.points[45])
    assert np.linalg.norm(pred - truth, axis=1).max() < 0.1 * iod


def test_detector_points_find_the_face_and_miss_an_empty_box():
    pytest.importorskip("cv2")
    _root, ds = _aflw()
    lm = _REG.build("landmarker", "yunet")
    s = next(x for x in ds.samples if abs(x.info["yaw_degrees"]) < 10)
    img = ds.loader(s.key)
    blank = np.array([[0, 0, 40, 40]], float)  # a corner of the background
    pred = lm.predict(img, np.stack([s.box, blank[0]]))
    assert pred.shape == (2, 5, 2) and np.isnan(pred[1]).all()
    from harness.metrics.landmarks import COMMON_FIVE, get_scheme

    truth = get_scheme("ibug_68").semantic(s.points, COMMON_FIVE)
    iod = np.linalg.norm(s.points[36] - s.points[45])
    assert np.linalg.norm(pred[0] - truth, axis=1).mean() < 0.15 * iod


def test_iou_and_crop_clip_to_the_image():
    from facebench_plugins.landmarkers.detector_points import DetectorPoints, iou

    assert iou(np.array([0, 0, 10, 10.]), np.array([[0, 0, 10, 10.], [5, 0, 15, 10], [20, 20, 30, 30]])) \
        == pytest.approx([1.0, 1 / 3, 0.0])
    crop, offset = DetectorPoints(None)._crop(np.zeros((100, 80, 3), np.uint8), np.array([60, 10, 80, 50.]))
    assert crop.shape == (70, 30, 3) and offset.tolist() == [50.0, 0.0]  # grown by half its size, clipped


def test_landmarker_runs_refuse_other_components_and_data_without_landmarks():
    with pytest.raises(ConfigError, match="not of detection runs; drop --landmarker there, or run it alone"):
        RunConfig(landmarkers=("dlib_68",), detectors=("yunet",), eval=("aflw2000",)).expand(_REG)
    (run,) = RunConfig(landmarkers=("dlib_68",), eval=("att",)).expand(_REG)
    assert run.task == "landmarks" and run.train == ()
    from harness.tasks import TaskContext, get_task

    ctx = TaskContext(registry=_REG, run_dir=None, cache_dir=None, progress=False)  # type: ignore[arg-type]
    if not _REG.get("landmarker", "dlib_68").available:
        pytest.skip("dlib is not installed")
    with pytest.raises(HarnessError, match="has no landmark annotations"):
        get_task("landmarks")(run, ctx)
