"""The interval calls added for issue 17's remaining metrics (harness/tasks/_intervals.py): IJB
template protocols, the meshface summaries, subject ids in ``scores.npz`` and the detector score
kept per image as an EVRC quality signal."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.config import IntervalSettings
from harness.formats.ijb import IjbMeta
from harness.metrics import Metric
from harness.tasks import _intervals
from harness.tasks.templates import FPIR_TARGETS, evaluate_templates


def _spec(**kw):
    return SimpleNamespace(intervals=IntervalSettings(**kw), seed=3)


def _ijb(one_n=True, n_subjects=20, per=3, seed=0):
    """An IJB protocol in memory: ``per`` templates per subject, one face each; all template pairs;
    G1 = the first template of subjects 0-8, probes = the others (subjects 9-19 non-mated)."""
    r = np.random.default_rng(seed)
    tids = np.arange(1, n_subjects * per + 1)
    subj = np.repeat(np.arange(n_subjects), per)
    a, b = np.triu_indices(tids.size, 1)
    pairs = np.stack([tids[a], tids[b]], 1)
    first = np.arange(tids.size) % per == 0
    g1 = first & (subj < 9)
    meta = IjbMeta(Path("."), "ijbc", [f"{t}.jpg" for t in tids], tids, tids * 10, pairs,
                   (subj[a] == subj[b]).astype(np.int64),
                   galleries={"G1": (tids[g1], subj[g1])} if one_n else None,
                   probes=(tids[~g1], subj[~g1]) if one_n else None)
    emb = r.normal(size=(n_subjects, 8))[subj] + 0.9 * r.normal(size=(tids.size, 8))
    return meta, evaluate_templates(meta, emb)


def _metrics(res):
    out = [Metric(f"tar_at_far_1e{int(round(np.log10(r['far'])))}", r["tar"] if r["defined"] else None,
                  "higher").to_dict() for r in res["verification"]["tar_at_far"]]
    for g, row in (res.get("identification") or {}).items():
        out += [Metric(f"{g.lower()}_rank{k}", row[f"rank{k}"], "higher").to_dict() for k in (1, 5, 10)]
        out += [Metric(f"{g.lower()}_tpir_at_fpir_1e{int(round(np.log10(p['fpir'])))}",
                       p["tpir"] if p["defined"] else None, "higher").to_dict() for p in row["tpir_at_fpir"]]
    return out


@pytest.mark.parametrize("one_n, why", [(True, "name the subject"), (False, "mated-pair graph")],
                         ids=["1N-files-name-subjects", "no-1N-files"])
def test_template_protocols_get_intervals_with_their_unit(one_n, why):
    unit = "subjects"
    meta, res = _ijb(one_n)
    out = {"metrics": _metrics(res), "sections": {}}
    _intervals.templates(_spec(bootstrap=80), out, meta, res)
    st = out["sections"]["intervals"]
    assert st["unit"] == unit and st["B"] == 80 and st["seed"] == 3 and why in st["unit_reason"]
    for m in out["metrics"]:
        if m["value"] is None:  # a FAR below 1 / impostor pairs is not measurable: no interval either
            assert m["ci"] is None
            continue
        ci = m["meta"]["ci"]
        assert {"level", "method", "unit", "B", "seed"} <= set(ci), m
        assert ci["unit"] == (unit if m["name"].startswith("tar") else "subjects"), m
        assert m["ci"] == [ci["low"], ci["high"]] and ci["B"] == 80 and ci["seed"] == 3
    names = {m["name"] for m in out["metrics"] if m["ci"]}
    if one_n:
        assert {"g1_rank1", "g1_rank5", "tar_at_far_1e-1"} <= names
        assert {f"g1_tpir_at_fpir_1e{int(round(np.log10(t)))}" for t in FPIR_TARGETS} & names


def test_template_intervals_off_and_forced_pairs():
    meta, res = _ijb()
    out = {"metrics": _metrics(res), "sections": {}}
    _intervals.templates(_spec(bootstrap=0), out, meta, res)
    assert out["sections"]["intervals"]["B"] == 0 and all(m["ci"] is None for m in out["metrics"])
    out = {"metrics": _metrics(res), "sections": {}}
    _intervals.templates(_spec(bootstrap=40, unit="pairs"), out, meta, res)
    by = {m["name"]: m for m in out["metrics"]}
    assert by["tar_at_far_1e-1"]["meta"]["ci"]["unit"] == "pairs"
    assert by["g1_rank1"]["meta"]["ci"]["unit"] == "probes"


def _meshface(n=120, seed=0, folds=1):
    from harness.metrics.report import verification_summary

    r = np.random.default_rng(seed)
    y = (np.arange(n) % 2 == 0).astype(np.int64)
    a = r.integers(0, 30, n)
    b = np.where(y == 1, a, (a + 1 + r.integers(0, 29, n)) % 30)
    scores = {c: r.normal(0, 1, n) + (2.5 - i) * y for i, c in enumerate(("clean", "restored", "meshed"))}
    f = np.arange(n) % folds
    metrics = []
    for c, s in scores.items():
        summ = verification_summary(s, y, f if folds > 1 else None)
        by = {m["name"]: m for m in summ["metrics"]}
        acc = by.get("accuracy") or Metric("accuracy", 0.8, "higher").to_dict()
        metrics += [{**acc, "name": f"accuracy_{c}"}, {**by["tar_at_far_1e-1"], "name": f"tar_at_far_1e-1_{c}"},
                    {**by["eer"], "name": f"eer_{c}"}]
        if c == "restored":
            metrics += [{**m, "name": f"{m['name']}_restored"} for m in summ["metrics"]
                        if m["name"] not in ("accuracy", "eer", "tar_at_far_1e-1")]
    q = {"psnr_restored": r.normal(30, 2, n), "ssim_restored": r.uniform(0.7, 0.9, n),
         "psnr_meshed": r.normal(25, 2, n), "ssim_meshed": r.uniform(0.5, 0.7, n)}
    metrics += [Metric(k, float(v.mean()), "higher").to_dict() for k, v in q.items()]
    ious = r.uniform(0.2, 0.8, n)
    metrics.append(Metric("mask_iou", float(ious.mean()), "higher").to_dict())
    return metrics, scores, y, f, q, ious, a, b


@pytest.mark.parametrize("folds", [1, 10], ids=["one-fold", "ten-folds"])
def test_meshface_summaries_get_intervals(folds):
    metrics, scores, y, f, q, ious, a, b = _meshface(folds=folds)
    st = _intervals.inpainting(_spec(bootstrap=60), metrics, scores, y, f, q, ious, a, b)
    assert st["unit"] == "subjects" and st["B"] == 60
    for m in metrics:
        if m["value"] is None:
            continue
        if m["name"].startswith("accuracy_") and folds == 1:  # resubstitution: none, and said so
            assert m["ci"] is None and "accuracy_*" in st["without"]
            continue
        assert m["ci"] is not None, m["name"]
        assert m["meta"]["ci"]["unit"] == "subjects" and m["meta"]["ci"]["B"] == 60
    by = {m["name"]: m for m in metrics}
    lo, hi = by["psnr_restored"]["ci"]
    assert lo < q["psnr_restored"].mean() < hi


def test_meshface_unknown_identities_resample_pairs_with_the_binomial_at_the_threshold():
    metrics, scores, y, f, q, ious, a, b = _meshface()
    a = np.where(np.arange(a.size) == 0, -1, a)
    st = _intervals.inpainting(_spec(bootstrap=40), metrics, scores, y, f, q, ious, a, b)
    by = {m["name"]: m for m in metrics}
    assert st["unit"] == "pairs" and by["eer_meshed"]["meta"]["ci"]["unit"] == "pairs"
    assert by["far_at_eer_threshold_restored"]["meta"]["ci"]["method"] == "clopper-pearson"
    assert _intervals.inpainting(_spec(bootstrap=0), metrics, scores, y, f, q)["B"] == 0


def test_subject_arrays_only_when_every_identity_is_known():
    images = SimpleNamespace(labels=np.array([0, 0, 1, 2, -1]))
    got = _intervals.subject_arrays(SimpleNamespace(images=images, pairs=np.array([[0, 1], [1, 2], [2, 3]])))
    assert got["subject_a"].tolist() == [0, 0, 1] and got["subject_b"].tolist() == [0, 1, 2]
    assert _intervals.subject_arrays(SimpleNamespace(images=images, pairs=np.array([[0, 4]]))) == {}
    assert _intervals.subject_arrays(SimpleNamespace(images=SimpleNamespace(labels=None), pairs=None)) == {}


# ----------------------------------------------------- harness score on a run's scores.npz
def _scores_npz(path, with_subjects):
    r = np.random.default_rng(0)
    n = 300
    y = (np.arange(n) % 2 == 0).astype(np.int8)
    a = r.integers(0, 40, n)
    b = np.where(y == 1, a, (a + 1 + r.integers(0, 39, n)) % 40)
    arrays = {"score": r.normal(size=n) + 2 * y, "label": y, "fold": np.arange(n) % 10,
              "fallback_a": np.zeros(n, bool), "fallback_b": np.zeros(n, bool)}
    if with_subjects:
        arrays.update(subject_a=a, subject_b=b)  # as harness/tasks/recognition.py writes them: label indices
    np.savez(path, **arrays)


@pytest.mark.parametrize("with_subjects, unit", [(True, "subjects"), (False, "pairs")], ids=["new", "old-file"])
def test_harness_score_redoes_the_subject_bootstrap_of_a_run(tmp_path, with_subjects, unit):
    import json

    from click.testing import CliRunner

    from harness.cli.score import command

    _scores_npz(tmp_path / "scores.npz", with_subjects)
    res = CliRunner().invoke(command, [str(tmp_path / "scores.npz"), "--reports", str(tmp_path / "r"),
                                       "--bootstrap", "100", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    iv = data["protocol"]["intervals"]
    assert iv["unit"] == unit
    assert ("names the people" in iv["unit_reason"]) if with_subjects else ("names no subjects" in iv["unit_reason"])
    acc = next(m for m in data["metrics"] if m["name"] == "accuracy")
    assert acc["meta"]["ci"]["unit"] == unit
    text = CliRunner().invoke(command, [str(tmp_path / "scores.npz"), "--reports", str(tmp_path / "t"),
                                        "--bootstrap", "50"]).output
    assert ("unit: the file names no subjects" in text) != with_subjects


# ------------------------------------------- detector score: cached per image, an EVRC signal
def test_the_face_store_keeps_the_detector_score_and_reads_old_stores(tmp_path):
    from harness.tasks._faces import _read_store, _write_store, detect_one
    from harness.types import Detections

    class Two:
        def detect(self, img):
            return Detections(np.array([[0, 0, 10, 10], [40, 40, 60, 60]]), np.array([0.3, 0.9]))

    row = detect_one(Two(), np.zeros((100, 100, 3), np.uint8))
    assert row[2] and row[4] == pytest.approx(0.9)  # the face nearest the centre, its score

    class Nothing:
        def detect(self, img):
            return Detections.empty()

    none = detect_one(Nothing(), np.zeros((50, 50, 3), np.uint8))
    assert not none[2] and np.isnan(none[4])
    _write_store(tmp_path / "s.npz", {"a": row, "b": none})
    back = _read_store(tmp_path / "s.npz")
    assert back["a"][4] == pytest.approx(0.9) and np.isnan(back["b"][4])
    with np.load(tmp_path / "s.npz") as z:  # a store written before scores were kept
        old = {k: z[k] for k in z.files if k != "det_scores"}
    np.savez(tmp_path / "old.npz", **old)
    assert np.isnan(_read_store(tmp_path / "old.npz")["a"][4])


def test_detector_score_is_an_evrc_signal_where_every_found_face_has_one():
    from harness.tasks._gallery import quality_signals

    crops = [np.full((16, 16, 3), i * 20, np.uint8) for i in range(4)]
    ev = SimpleNamespace(crops=crops)
    boxes = np.array([[0, 0, 10, 10]] * 3 + [[np.nan] * 4], np.float64)
    sig, desc, missing = quality_signals(ev, None, boxes, np.array([0.9, 0.5, 0.7, np.nan]))
    assert sig["detector_score"][:3].tolist() == [0.9, 0.5, 0.7] and np.isnan(sig["detector_score"][3])
    assert "detector_score" in desc and not any(m.startswith("detector score") for m in missing)
    sig, _, missing = quality_signals(ev, None, boxes, np.array([0.9, np.nan, 0.7, np.nan]))  # an old store
    assert "detector_score" not in sig and any("delete it to recompute" in m for m in missing)
    sig, _, missing = quality_signals(ev, None, None, None)  # already-aligned data
    assert "detector_score" not in sig and any(m.startswith("detector score") for m in missing)
