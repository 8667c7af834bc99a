"""The detection task scores each set by the protocol its dataset names
(``harness.types.ScoredDetectionData``), never by the dataset's name: the FDDB discrete ROC
checked by hand on named edge cases and against ``fddb_discrete_roc``, its bootstrap over
images, a third-party dataset run without any change to the task, and the one-line errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import ConfigError, DataError
from harness.formats.detection import ellipse_to_box
from harness.hookspecs import hookimpl
from harness.metrics.detection import ellipse_box_overlap, fddb_discrete_roc
from harness.registry import Registry, reset_registry
from harness.specs import DatasetSpec, DetectorSpec
from harness.tasks import _fddb
from harness.tasks.detection import PROTOCOLS
from harness.types import Dataset, Detections, DetectionSample, DetectionSet, ScoredDetectionData

B = 100

# --- the hand-computed case -------------------------------------------------------------------
# Image "two_faces" (120 x 240): ellipses E1, E2 (30 x 20 radii, axis-aligned), bounding boxes
# [30, 40, 90, 80] and [130, 40, 190, 80].  Image "one_face" (100 x 100): E3, upright.
# Detections (the fixture detector knows each image by its width):
#   d1 = E1's bounding box, 0.9      pixel IoU with E1 = (pi 30 20) / (60 40) = pi / 4 = 0.785 > 0.5: TP
#   d2 = d1 moved by 2 px, 0.8       a duplicate of E1's face: one-to-one matching makes it an FP
#   d3 = left half of E2's box, 0.7  box IoU with E2's bounding box is exactly 0.5, but the pixel
#                                    IoU with the ellipse is (pi 300) / (1200 + pi 300) = 0.440: FP,
#                                    and E2 is missed (the FDDB rule scores the ellipse, not its box)
#   d4 = background, 0.95            FP in "one_face"; E3 missed
# Discrete ROC, thresholds 0.95 / 0.9 / 0.8 / 0.7: FP 1, 1, 2, 3; TP 0, 1, 1, 1 of 3 faces.
ELLIPSES = {
    "two_faces": np.array([[30, 20, 0, 60, 60], [30, 20, 0, 160, 60]], float),
    "one_face": np.array([[20, 15, math.pi / 2, 50, 50]], float),
}
SHAPES = {"two_faces": (120, 240), "one_face": (100, 100)}
DETECTIONS = {
    "two_faces": np.array([[30, 40, 90, 80, 0.9], [32, 42, 92, 82, 0.8], [130, 40, 160, 80, 0.7]]),
    "one_face": np.array([[0, 0, 10, 10, 0.95]]),
}
ROC_FP = [1, 1, 2, 3]
ROC_TPR = [0, 1 / 3, 1 / 3, 1 / 3]


def _image(key: str) -> np.ndarray:
    h, w = SHAPES[key]
    return np.full((h, w, 3), 90, np.uint8)


class FixedDetector:
    """Returns :data:`DETECTIONS` of the image it is shown (told apart by width)."""

    def detect(self, image):
        key = next(k for k, s in SHAPES.items() if s[1] == image.shape[1])
        d = DETECTIONS[key]
        return Detections(d[:, :4], d[:, 4], None)


class Unscored(Dataset):
    """Offers detection data held in memory but does not say how it is scored."""

    name = "unscored"

    def detection(self) -> DetectionSet:
        samples = [DetectionSample(key=k, boxes=np.array([ellipse_to_box(*x) for x in e]), info={"ellipses": e})
                   for k, e in ELLIPSES.items()]
        return DetectionSet(samples=samples, loader=_image, protocol="two in-memory images (test)")


class EllipseSet(Unscored):
    """A third-party detection dataset held in memory that names the fddb protocol."""

    name = "ellipse_set"
    detection_protocol = "fddb"


class OddProtocol(Unscored):
    """Names a protocol the detection task does not know."""

    name = "odd_protocol"
    detection_protocol = "voc2007"


@dataclass(frozen=True)
class _NoOptions:
    pass


class Fixtures:
    __name__ = "detection_protocol_fixtures"

    @staticmethod
    @hookimpl
    def register_detectors():
        return [DetectorSpec(name="fixed_boxes", summary="fixed boxes per image (test)",
                             factory=lambda opts: FixedDetector(), options=_NoOptions, landmarks=False)]

    @staticmethod
    @hookimpl
    def register_datasets():
        return [DatasetSpec(name=c.name, summary=c.__doc__.splitlines()[0], factory=lambda opts, path=None, c=c: c(),
                            options=_NoOptions, tasks=("detection",), framework="none")
                for c in (EllipseSet, Unscored, OddProtocol)]


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    reg = Registry(plugins=[Fixtures])
    reset_registry(reg)
    yield reg
    reset_registry(None)


def _run(tmp_path: Path, *args: str) -> tuple[int, dict | None]:
    cfg = tmp_path / "intervals.yaml"
    cfg.write_text(f"intervals:\n  bootstrap: {B}\n")
    reports = tmp_path / "reports"
    code = main(["run", "--config", str(cfg), "--detector", "fixed_boxes", *args, "--reports", str(reports)])
    found = sorted(reports.glob("runs/*/results.json"))
    return code, (json.loads(found[-1].read_text()) if found and code == 0 else None)


# --- the rule, by hand ------------------------------------------------------------------------
def test_hand_computed_overlaps_name_the_rule():
    e1, e2 = ELLIPSES["two_faces"]
    d = DETECTIONS["two_faces"][:, :4]
    ov = ellipse_box_overlap(np.array([e1, e2]), d)
    assert ov[0, 0] == pytest.approx(math.pi / 4, abs=0.01)  # the ellipse's own bounding box: TP
    half = math.pi * 300 / (1200 + math.pi * 300)
    assert ov[1, 2] == pytest.approx(half, abs=0.01) and ov[1, 2] < _fddb.OVERLAP  # half box: not a TP
    assert ov[0, 1] > _fddb.OVERLAP  # the duplicate overlaps E1 well; only one-to-one matching rejects it


def test_events_assemble_the_reference_roc_on_the_hand_case():
    ev = _fddb.image_events(DETECTIONS, ELLIPSES)
    mine, ref = _fddb.roc(ev), fddb_discrete_roc(DETECTIONS, ELLIPSES)
    assert mine.false_positives.tolist() == ROC_FP and mine.tpr.tolist() == pytest.approx(ROC_TPR)
    assert mine.thresholds.tolist() == pytest.approx([0.95, 0.9, 0.8, 0.7])
    for a, b in ((mine.thresholds, ref.thresholds), (mine.true_positives, ref.true_positives),
                 (mine.false_positives, ref.false_positives)):
        assert np.array_equal(a, b)
    assert mine.n_faces == ref.n_faces == 3
    assert mine.tpr_at_fp(0) == 0 and mine.tpr_at_fp(1) == pytest.approx(1 / 3)


def test_events_match_the_reference_on_ties_empty_images_and_faceless_images():
    """Random sets with score ties across images, images without a detection and images
    without a face: the assembled curve is ``fddb_discrete_roc``'s, point for point."""
    r = np.random.default_rng(3)
    for trial in range(6):
        ellipses, preds = {}, {}
        for i in range(12):
            m = int(r.integers(0, 4))  # 0: a faceless image
            ellipses[f"i{i}"] = np.c_[r.uniform(10, 30, m), r.uniform(8, 20, m), r.uniform(-1.6, 1.6, m),
                                      r.uniform(40, 160, (m, 2))]
            n = int(r.integers(0, 5))  # 0: no detection
            xy = r.uniform(20, 150, (n, 2))
            preds[f"i{i}"] = np.c_[xy, xy + r.uniform(15, 50, (n, 2)), r.choice([0.3, 0.5, 0.7, 0.9], n)]
        if sum(len(e) for e in ellipses.values()) == 0:
            continue
        mine, ref = _fddb.roc(_fddb.image_events(preds, ellipses)), fddb_discrete_roc(preds, ellipses)
        assert np.array_equal(mine.thresholds, ref.thresholds), trial
        assert np.array_equal(mine.true_positives, ref.true_positives), trial
        assert np.array_equal(mine.false_positives, ref.false_positives), trial
        for n in (0, 1, 3, 10):
            assert _fddb._tpr_at_fp(_fddb.image_events(preds, ellipses), np.ones((1, 12), int), n)[0] == \
                pytest.approx(ref.tpr_at_fp(n)), (trial, n)


def test_events_match_the_reference_on_a_real_fddb_fold():
    """Real FDDB fold-01 ellipses (290 images); detections: each face's bounding box jittered, some
    faces dropped, a false box per image, scores on a coarse grid (ties across images)."""
    from tests.conftest import need_data

    ds = Registry().build("dataset", "fddb", {"folds": "1"}, path=str(need_data("fddb"))).detection()
    r = np.random.default_rng(7)
    ellipses, preds = {}, {}
    for s in ds.samples:
        ellipses[s.key] = np.asarray(s.info["ellipses"], float)
        kept = s.boxes[r.random(len(s.boxes)) < 0.8]
        boxes = kept + r.normal(0, 0.08, kept.shape) * (kept[:, 2:] - kept[:, :2]).repeat(2, axis=1)
        false = np.c_[r.uniform(0, 300, (1, 2)), r.uniform(300, 400, (1, 2))]
        both = np.r_[boxes, false]
        preds[s.key] = np.c_[both, r.choice(np.linspace(0.1, 1, 10), len(both))]
    ev = _fddb.image_events(preds, ellipses)
    mine, ref = _fddb.roc(ev), fddb_discrete_roc(preds, ellipses)
    assert ref.n_faces == mine.n_faces > 290 and len(ref.thresholds) == 10
    for a, b in ((mine.thresholds, ref.thresholds), (mine.true_positives, ref.true_positives),
                 (mine.false_positives, ref.false_positives)):
        assert np.array_equal(a, b)
    for n in (0, 50, 200, 1000):
        assert _fddb._tpr_at_fp(ev, np.ones((1, ev.n_images), int), n)[0] == pytest.approx(ref.tpr_at_fp(n)), n
    assert 0.5 < ref.tpr_at_fp(1000) < 0.85  # about 80 % of the faces kept, most still overlapping > 0.5


def test_a_bootstrap_weight_counts_an_image_as_often_as_it_is_drawn():
    """Weights (1, 2): the ROC of the set with "two_faces" listed twice, by the reference."""
    ev = _fddb.image_events(DETECTIONS, ELLIPSES)
    keys = list(ELLIPSES)
    w = np.array([[1 if k == "one_face" else 2 for k in keys], [0 if k == "one_face" else 1 for k in keys]])
    twice = {**ELLIPSES, "two_faces_again": ELLIPSES["two_faces"]}
    ref = fddb_discrete_roc({**DETECTIONS, "two_faces_again": DETECTIONS["two_faces"]}, twice)
    only = fddb_discrete_roc({"two_faces": DETECTIONS["two_faces"]}, {"two_faces": ELLIPSES["two_faces"]})
    for n in (0, 1, 2, 4, 6):
        got = _fddb._tpr_at_fp(ev, w, n)
        assert got[0] == pytest.approx(ref.tpr_at_fp(n)) and got[1] == pytest.approx(only.tpr_at_fp(n)), n
    assert np.isnan(_fddb._tpr_at_fp(ev, np.zeros((1, 2), int), 1)[0])  # no face drawn: undefined


# --- the task -----------------------------------------------------------------------------------
def test_a_third_party_dataset_is_scored_by_the_protocol_it_names(tmp_path, registry):
    code, res = _run(tmp_path, "--eval", "ellipse_set")
    assert code == 0
    by = {m["name"]: m for m in res["metrics"]}
    assert set(by) == {"fddb_tpr_at_fp_100", "fddb_tpr_at_fp_500", "fddb_tpr_at_fp_1000", "images_per_s"}
    for n in _fddb.FP_POINTS:
        m = by[f"fddb_tpr_at_fp_{n}"]
        assert m["value"] == pytest.approx(1 / 3)
        assert m["ci"] is not None and m["meta"]["ci"]["unit"] == "images" and m["meta"]["ci"]["B"] == B
    roc = res["curves"]["fddb_roc"]
    assert roc["false_positives"] == ROC_FP and roc["tpr"] == pytest.approx(ROC_TPR)
    p = res["protocol"]
    assert p["faces_counted"] == 3 and p["images"] == 2 and p["detections"] == 4
    assert "Jain & Learned-Miller 2010" in p["roc_rule"] and "> 0.5" in p["roc_rule"]
    g = res["sections"]["detection_gallery"]
    assert g["counts"]["faces"] == 3 and "ellipse" in g["rule"]
    assert res["sections"]["intervals"]["unit"] == "images"
    # the run page: the ROC and the table of budgets with their intervals (harness/report/_fddb_roc.py)
    from harness.report._fddb_roc import fddb_roc_section
    from harness.results import RunStore

    (run,) = RunStore(tmp_path / "reports").runs()
    html = run.page_path.read_text()
    assert 'id="fddb-roc"' in html and 'data-plot="fddb-roc"' in html and 'id="fddb-points"' in html
    sec = fddb_roc_section(res)
    (table,) = sec.tables
    assert [r[0].text for r in table.rows] == ["≤ 100", "≤ 500", "≤ 1,000"]
    assert [r[1].text for r in table.rows] == ["33.33%"] * 3 and all(r[2].text.startswith("[") for r in table.rows)
    assert fddb_roc_section({"metrics": [], "curves": {}}) is None


def test_fddb_folds_with_images_on_disk(tmp_path, registry):
    """The built-in ``fddb`` dataset: an ellipse-list file and its images, scored like the hand case."""
    from harness.formats.images import encode_image

    folds = tmp_path / "fddb" / "FDDB-folds"
    pics = tmp_path / "originalPics"
    folds.mkdir(parents=True)
    lines = []
    for key, ells in ELLIPSES.items():
        path = f"2002/07/19/big/{key}"
        (pics / path).parent.mkdir(parents=True, exist_ok=True)
        (pics / f"{path}.jpg").write_bytes(encode_image(_image(key), ".jpg"))
        lines += [path, str(len(ells))] + [" ".join(f"{v:.6f}" for v in e) + "  1" for e in ells]
    (folds / "FDDB-fold-01-ellipseList.txt").write_text("\n".join(lines) + "\n")
    code, res = _run(tmp_path, "--eval", f"fddb={tmp_path / 'fddb'}", "-o", f"fddb.images={pics}",
                     "-o", "fddb.folds=1")
    assert code == 0
    assert res["curves"]["fddb_roc"]["false_positives"] == ROC_FP
    assert res["curves"]["fddb_roc"]["tpr"] == pytest.approx(ROC_TPR)
    assert res["protocol"]["name"].startswith("FDDB folds 1-1 (2 images")


def test_fddb_without_its_images_is_one_clear_line(tmp_path, registry, capsys):
    folds = tmp_path / "fddb" / "FDDB-folds"
    folds.mkdir(parents=True)
    (folds / "FDDB-fold-01-ellipseList.txt").write_text("a/img_1\n1\n30 20 0 60 60 1\n")
    code, _ = _run(tmp_path, "--eval", f"fddb={tmp_path / 'fddb'}", "-o", "fddb.folds=1")
    err = capsys.readouterr().err
    assert code == 2 and "-o fddb.images=" in err and "Traceback" not in err, err
    code, _ = _run(tmp_path, "--skip-bad", "--eval", f"fddb={tmp_path / 'fddb'}", "-o", "fddb.folds=1")
    err = capsys.readouterr().err
    assert code == 2 and "no readable image left" in err and "fddb.images" in err, err


@pytest.mark.parametrize("name,expected", [
    ("unscored", "does not say how its detection ground truth is scored"),
    ("odd_protocol", "names detection protocol 'voc2007'; expected one of fddb, wider"),
])
def test_a_dataset_without_a_known_protocol_is_refused_in_one_line(tmp_path, registry, capsys, name, expected):
    code, _ = _run(tmp_path, "--eval", name)
    err = [ln for ln in capsys.readouterr().err.splitlines() if expected in ln]
    assert code == 2 and err and "Traceback" not in "".join(err), err


# --- the contract, over the registry -------------------------------------------------------------
def _detection_datasets() -> list:
    reg = Registry()
    return [pytest.param(s.name, id=f"{s.name}@{reg.owner('dataset', s.name)}")
            for s in reg.specs("dataset") if "detection" in s.tasks]


@pytest.mark.parametrize("name", _detection_datasets())
def test_every_detection_dataset_names_a_known_protocol(name):
    reg = Registry()
    spec = reg.get("dataset", name)
    if not spec.available:
        pytest.skip(f"dataset {name!r} needs {spec.framework} ({spec.install_hint})")
    try:
        ds = reg.build("dataset", name, {})
    except (DataError, ConfigError) as exc:  # its default data is absent here (checked in its own tests)
        pytest.skip(f"dataset {name!r} cannot be built here: {exc}")
    assert isinstance(ds, ScoredDetectionData), f"{name} declares 'detection' but names no detection_protocol"
    assert ds.detection_protocol in PROTOCOLS
