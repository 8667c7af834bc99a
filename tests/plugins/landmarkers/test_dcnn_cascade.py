"""``dcnn_cascade`` (Sun et al. 2013 five-point cascade): geometry, training through
``harness train-landmarker`` on 12 real AFLW2000-3D faces, evaluation on the 4 held out.

Measured (1 thread, 120 steps per level, batch 16, one refinement level; load ~13 on 2 cores):
the 4 held-out faces' five-point NME (inter-ocular) is well under the mean shape's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness.errors import ConfigError, DataError, HarnessError
from harness.metrics import landmarks as L
from harness.registry import Registry
from harness.types import LandmarkSample, LandmarkSet, Landmarker
from tests.conftest import need_data

torch = pytest.importorskip("torch")
pytest.importorskip("cv2")
from facebench_plugins.landmarkers import dcnn_cascade as D  # noqa: E402
from facebench_plugins.landmarkers.options import DcnnCascadeOptions, DcnnTrainOptions  # noqa: E402

_REG = Registry()
TRAIN_FACES = 12


def _aflw():
    root = need_data("landmarks/aflw2000_prnet")
    return root, _REG.build("dataset", "aflw2000", {}, path=str(root)).landmarks()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root, data = _aflw()
    from harness.cli import cli

    ckpt = tmp_path_factory.mktemp("dcnn") / "dcnn.pt"
    torch.set_num_threads(1)
    r = CliRunner().invoke(cli, ["train-landmarker", "dcnn_cascade", "--train", f"aflw2000={root}",
                                 "--max-faces", str(TRAIN_FACES), "--out", str(ckpt), "--steps", "120",
                                 "--batch-size", "16", "--refine-levels", "1", "--threads", "1"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return root, data, ckpt, r.output


def _nme5(pred: np.ndarray, samples: list, scheme: str) -> np.ndarray:
    gts = np.stack([s.points for s in samples])
    true5 = D.five_points(gts, scheme)
    d = L.normaliser(gts, scheme, "inter_ocular", np.stack([s.box for s in samples]))
    return np.linalg.norm(pred - true5, axis=-1).mean(axis=1) / d


def test_trained_cascade_beats_the_mean_shape_on_held_out_faces(trained):
    _root, data, ckpt, out = trained
    assert "wrote" in out and "faces" in out
    lm = _REG.build("landmarker", "dcnn_cascade", {"weights": str(ckpt)})
    assert isinstance(lm, Landmarker)
    held = list(data.samples)[TRAIN_FACES:]
    assert len(held) == 4
    pred = np.concatenate([lm.predict(data.loader(s.key), s.box[None]) for s in held])
    mean = []
    for s in held:  # the mean shape of the training faces, placed in each box as the cascade places points
        centre, side = D.face_frame(s.box, lm.config["margin"])
        m = D._affine(centre, side, D.CANVAS)
        frac = lm.model.mean_shape.numpy().astype(np.float64)
        mean.append(D._apply(D.cv2.invertAffineTransform(m), D._from_fraction(frac, D.CANVAS)))
    cascade, baseline = _nme5(pred, held, data.scheme), _nme5(np.stack(mean), held, data.scheme)
    print("held-out 5-point NME (inter-ocular): cascade", cascade.round(3), "mean shape", baseline.round(3))
    assert np.isfinite(cascade).all()
    assert cascade.mean() < 0.75 * baseline.mean()
    assert lm.meta["train_nme_inter_pupil"] < lm.meta["mean_shape_nme_inter_pupil"]
    assert lm.meta["history"]["level1"]["last_loss"] < lm.meta["history"]["level1"]["first_loss"]


def test_harness_run_reports_the_trained_cascade_beside_the_others(trained, tmp_path):
    root, _data, ckpt, _ = trained
    from harness.cli import cli

    r = CliRunner().invoke(cli, ["run", "--landmarker", "dcnn_cascade", "-o", f"dcnn_cascade.weights={ckpt}",
                                 "--eval", f"aflw2000={root}", "--reports", str(tmp_path)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "dcnn_cascade on aflw2000" in r.output and "5pt NME (inter_ocular)" in r.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    res = json.loads((run_dir / "results.json").read_text())
    m = {x["name"]: x["value"] for x in res["metrics"]}
    assert res["task"] == "landmarks" and 0 < m["nme_5pt_inter_ocular"] < 1
    assert res["sections"]["landmarks"]["missed"] == 0


def test_contract_on_two_boxes_and_none(trained):
    _root, data, ckpt, _ = trained
    lm = D.build(DcnnCascadeOptions(weights=str(ckpt)))
    img = data.loader(data.samples[0].key)
    assert lm.predict(img, np.array([[30, 30, 130, 130], [40, 20, 120, 140]], np.float32)).shape == (2, 5, 2)
    assert lm.predict(img, np.zeros((0, 4))).shape == (0, 5, 2)
    with pytest.raises(ValueError, match="uint8 RGB"):
        lm.predict(img[..., 0], np.array([[0, 0, 10, 10]]))
    with pytest.raises(DataError, match="empty"):
        lm.predict(img, np.array([[5, 5, 5, 5]]))


def test_untrained_cascade_is_the_mean_shape_and_geometry_round_trips(tmp_path):
    model = D.DCNNCascade(refine_levels=1)
    model.mean_shape.copy_(torch.tensor([[0.3, 0.4], [0.7, 0.4], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]]))
    torch.save({"state_dict": model.state_dict(), "config": {"refine_levels": 1, "margin": 0.2}}, tmp_path / "m.pt")
    lm = D.build(DcnnCascadeOptions(weights=str(tmp_path / "m.pt")))
    img = np.random.default_rng(0).integers(0, 255, (200, 300, 3), np.uint8)
    box = np.array([100.0, 50.0, 180.0, 150.0])  # 80 x 100: square side 90 * 1.4 = 126 around (140, 100)
    got = lm.predict(img, box[None])[0]
    want = np.array([140, 100]) + (model.mean_shape.numpy() - 0.5) * 126
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_patches_sample_exactly_where_asked():
    ramp = torch.arange(80, dtype=torch.float32).repeat(80, 1)[None, None]  # value = x pixel index
    points = torch.tensor([[[0.5, 0.5]] * 5])
    # before standardising, the patch centre (column 7 of 15) sits on x = 0.5 * 80 - 0.5 = 39.5
    raw = torch.nn.functional.grid_sample(ramp, (2 * points[:, :, None, :] - 1), align_corners=False)
    assert float(raw[0, 0, 0, 0]) == pytest.approx(39.5)
    p = D.patches(ramp, points, radius=0.1)
    assert p.shape == (1, 5, 1, 15, 15)
    row = p[0, 0, 0, 7].numpy()
    assert np.all(np.diff(row) > 0) and abs(row[7]) < 1e-5  # increasing in x, zero at the centre


def test_flipped_training_faces_keep_image_left_first():
    _root, data = _aflw()
    faces = D._Faces([data], 0.2, log=lambda m: None)
    rng = np.random.default_rng(1)
    _x, y = faces.draw(np.arange(len(faces)).repeat(4), rng, jitter=0.05)
    y = y.numpy()
    frontal = np.abs(y[:, 0, 1] - y[:, 1, 1]) < 0.1
    assert frontal.sum() > 10
    assert (y[frontal, 0, 0] < y[frontal, 1, 0]).mean() > 0.9  # left eye left of right eye after any flip
    assert (y[frontal, 3, 0] < y[frontal, 4, 0]).mean() > 0.9


def test_68_to_5_mapping_and_schemes_without_it():
    pts = np.arange(136, dtype=np.float64).reshape(68, 2)
    five = D.five_points(pts, "ibug_68")
    np.testing.assert_allclose(five[0], pts[36:42].mean(axis=0))
    np.testing.assert_allclose(five[1], pts[42:48].mean(axis=0))
    np.testing.assert_allclose(five[2:], pts[[30, 48, 54]])
    with pytest.raises(DataError, match="lack left_eye_centre"):
        D.five_points(np.zeros((5, 2)), "dlib_5")
    one = LandmarkSet([LandmarkSample("a", pts, [0, 0, 10, 10])], loader=lambda k: np.zeros((20, 20, 3), np.uint8),
                      scheme="ibug_68")
    with pytest.raises(DataError, match="at least 2"):
        D.train([one], "unused.pt", DcnnTrainOptions(steps=1))


def test_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="train-landmarker"):
        D.build(DcnnCascadeOptions())
    with pytest.raises(DataError, match="do not exist"):
        D.build(DcnnCascadeOptions(weights=str(tmp_path / "none.pt")))
    torch.save({"state_dict": {}}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match="not a dcnn_cascade checkpoint"):
        D.build(DcnnCascadeOptions(weights=str(tmp_path / "bad.pt")))
    with pytest.raises(HarnessError, match="refine_levels"):
        DcnnTrainOptions(refine_levels=3)


@pytest.mark.parametrize("args, message", [
    (["train-landmarker", "dlib_68", "--train", "aflw2000=x", "--out", "o.pt"], "not trainable"),
    (["train-landmarker", "dcnn_cascade", "--train", "lfw=x", "--out", "o.pt"], "no landmark annotations"),
    (["train-landmarker", "dcnn_cascade", "--train", "aflw2000", "--out", "o.pt"], "needs a path"),
    (["train-landmarker", "dcnn_cascade", "--train", "aflw2000=x", "--out", "o.pt", "-o", "wflw.a=b"],
     "names no --train dataset"),
    (["train-landmarker", "dcnn_cascade", "--train", "aflw2000=x", "--out", "o.pt", "--steps", "0"], "steps"),
])
def test_train_landmarker_refuses_bad_input(args, message, capsys):
    from harness.cli import main

    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
