"""Intervals of the liveness, identification and detection metrics, and the ROC band.

Each vectorised statistic is checked against the reference metric evaluated on
the data (all-ones weights) and on a materialised resample (``np.repeat``),
on named edge cases: ties, no errors, one species, tiny n.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics._checks import MetricInputError
from harness.metrics.detection import wider_ap
from harness.metrics.identification import cmc_from_ranks, open_set_point
from harness.metrics.liveness import apcer_bpcer_acer, hter
from harness.metrics.report import verification_summary
from harness.metrics.uncertainty import (
    _voc_ap_rows,
    _wider_tables,
    band_grid,
    clopper_pearson,
    detection_ap_intervals,
    identification_intervals,
    identification_statistic,
    liveness_intervals,
    verification_cis,
    wilson,
)


# ------------------------------------------------------------------ liveness
def _pad(seed=0, n_bf=300, n_att=400):
    r = np.random.default_rng(seed)
    y = np.r_[np.ones(n_bf, bool), np.zeros(n_att, bool)]
    species = np.r_[[""] * n_bf, r.choice(["print", "replay"], n_att)]
    s = np.r_[r.normal(1.5, 1, n_bf), np.where(species[n_bf:] == "print", r.normal(-1, 1, n_att),
                                                r.normal(0, 1, n_att))]
    return s, y, species


def test_liveness_binomial_intervals_are_those_of_the_counts_at_the_threshold():
    s, y, sp = _pad()
    thr = 0.5
    ref = apcer_bpcer_acer(s, y, sp, thr)
    iv = liveness_intervals(s, y, thr, sp, B=200, seed=3)
    n_bf = int(y.sum())
    k_bf = int(np.count_nonzero((s < thr) & y))
    assert iv["bpcer"].to_dict()["errors"] == k_bf and ref.bpcer == pytest.approx(k_bf / n_bf)
    assert (iv["bpcer"].low, iv["bpcer"].high) == pytest.approx(clopper_pearson(k_bf, n_bf))
    w = ref.worst_species
    m = (sp == w) & ~y
    k = int(np.count_nonzero((s >= thr) & m))
    assert iv["apcer"].extra["species"] == w and iv["apcer"].unit == "trials"
    assert (iv["apcer"].low, iv["apcer"].high) == pytest.approx(clopper_pearson(k, int(m.sum())))
    for key, value in (("acer", ref.acer), ("hter", hter(s, y, thr))):
        assert iv[key].low <= value <= iv[key].high and iv[key].unit == "presentations"
    assert iv["eer"].unit == "presentations" and iv["auc"].low < iv["auc"].high <= 1.0
    wil = liveness_intervals(s, y, thr, sp, B=50, binomial="wilson")["bpcer"]
    assert (wil.low, wil.high) == pytest.approx(wilson(k_bf, n_bf))


def test_liveness_without_errors_states_the_rule_of_three():
    s, y, sp = _pad()
    iv = liveness_intervals(s, y, s.max() + 1, sp, B=50)  # every attack rejected: APCER 0
    assert iv["apcer"].low == 0.0 and iv["apcer"].extra["rule_of_3"] > 0
    one = liveness_intervals(s, y, 0.5, None, B=50)  # unnamed attacks: one species "attack"
    assert one["apcer"].extra["species"] == "attack"


def test_liveness_rejects_a_species_array_of_the_wrong_length():
    s, y, sp = _pad()
    with pytest.raises(MetricInputError, match="species: 3 entries"):
        liveness_intervals(s, y, 0.5, sp[:3], B=10)


# ------------------------------------------------------------ identification
def _trials(seed=0, n_trials=3, n=120, open_set=False):
    r = np.random.default_rng(seed)
    out = []
    for _ in range(n_trials):
        ids = r.integers(0, 30, n)
        rank = r.integers(1, 8, n)
        if open_set:
            rank[r.random(n) < 0.4] = 0
        mate = np.where(rank > 0, r.normal(1, 1, n), np.nan)
        top = np.round(r.normal(0, 1, n), 1)  # ties among the non-mated top scores
        out.append((ids, rank, mate, top))
    return out


def _repeat(trials, weights):
    """The trials materialised with each search repeated ``weights`` times."""
    out, start = [], 0
    for ids, rank, mate, top in trials:
        w = weights[start:start + len(rank)]
        start += len(rank)
        out.append(tuple(np.repeat(a, w) for a in (ids, rank, mate, top)))
    return out


@pytest.mark.parametrize("unit", ["subjects", "probes"])
def test_identification_statistic_is_the_metric_on_the_materialised_resample(unit):
    trials = _trials(open_set=True)
    targets = (1e-2, 1e-1, 0.3)
    stat, design = identification_statistic(trials, fpir_targets=targets, candidate_list=3, unit=unit)
    w = design.weights(np.random.default_rng(1), 4)
    for row in (np.ones(design.n_pairs, dtype=np.int32), *w):
        got = stat(row[None, :])
        rep = _repeat(trials, row)
        for t in targets:
            pts = [open_set_point(rk, m, tp, t, rank=3) for _, rk, m, tp in rep]
            assert got[f"tpir_at_fpir:{t!r}"][0] == pytest.approx(np.mean([p.tpir for p in pts]))
            assert got[f"fnir_at_fpir:{t!r}"][0] == pytest.approx(np.mean([p.fnir for p in pts]))


def test_identification_rank_k_matches_the_cmc_and_brackets_it():
    trials = _trials()
    stat, design = identification_statistic(trials, ranks=(1, 5))
    got = stat(np.ones((1, design.n_pairs), dtype=np.int32))
    for k in (1, 5):
        ref = np.mean([cmc_from_ranks(rk, 10)[k - 1] for _, rk, _, _ in trials])
        assert got[f"rank{k}"][0] == pytest.approx(ref)
    iv = identification_intervals(trials, ranks=(1,), B=300, seed=2)["rank1"]
    ref = np.mean([cmc_from_ranks(rk, 1)[0] for _, rk, _, _ in trials])
    assert iv.low <= ref <= iv.high and iv.unit == "subjects" and iv.B == 300
    wide = identification_intervals(trials[:1], ranks=(1,), B=300, seed=2, unit="probes")["rank1"]
    assert wide.unit == "probes"


def test_identification_refuses_bad_input():
    with pytest.raises(MetricInputError, match="unit: 'people'"):
        identification_intervals(_trials(), ranks=(1,), unit="people")
    with pytest.raises(MetricInputError, match="trials: none"):
        identification_intervals([], ranks=(1,))
    ids, rank, mate, top = _trials()[0]
    with pytest.raises(MetricInputError, match="differ in length"):
        identification_intervals([(ids[:5], rank, mate, top)], ranks=(1,))


# ----------------------------------------------------------------- detection
def _detections(seed=0, n_images=12):
    r = np.random.default_rng(seed)
    preds, gt, keep_hard, keep_easy = {}, {}, {}, {}
    for i in range(n_images):
        k = f"img{i}"
        n_gt = int(r.integers(0, 5))
        xy = r.uniform(0, 200, (n_gt, 2))
        boxes = np.c_[xy, xy + r.uniform(10, 40, (n_gt, 2))]
        gt[k] = boxes
        keep_hard[k] = np.ones(n_gt, bool)
        keep_easy[k] = r.random(n_gt) < 0.6
        hits = boxes[r.random(n_gt) < 0.7] + r.normal(0, 2, (1, 4))
        false = np.c_[r.uniform(300, 400, (2, 2)), r.uniform(420, 450, (2, 2))][: int(r.integers(0, 3))]
        both = np.r_[hits, false]
        preds[k] = np.c_[both, r.uniform(0.1, 0.9, len(both))]
    preds["img0"] = np.r_[preds["img0"], [[0, 0, 5, 5, 0.0], [500, 500, 510, 510, 1.0]]]  # the score extremes
    return preds, gt, {"hard": keep_hard, "easy": keep_easy}


def test_detection_tables_give_wider_ap_on_the_data_and_on_a_resample():
    preds, gt, keeps = _detections()
    for setting, keep in keeps.items():
        table, faces = _wider_tables(preds, gt, keep, 0.5, 1000)
        pr = table.sum(axis=0)
        prec = np.where(pr[:, 0] > 0, pr[:, 1] / np.where(pr[:, 0] > 0, pr[:, 0], 1), 0.0)
        ap = _voc_ap_rows((pr[:, 1] / faces.sum())[None], prec[None])[0]
        assert ap == pytest.approx(wider_ap(preds, gt, keep)[0])
        counts = np.array([2, 0, 1, 3, 1, 0, 1, 1, 2, 0, 1, 1])  # image 0 (the score extremes) kept
        rep_p, rep_g, rep_k = {}, {}, {}
        for i, key in enumerate(gt):
            for j in range(counts[i]):
                rep_p[f"{key}#{j}"], rep_g[f"{key}#{j}"], rep_k[f"{key}#{j}"] = preds[key], gt[key], keep[key]
        pr = (counts[:, None, None] * table).sum(axis=0)
        prec = np.where(pr[:, 0] > 0, pr[:, 1] / np.where(pr[:, 0] > 0, pr[:, 0], 1), 0.0)
        ap = _voc_ap_rows((pr[:, 1] / (counts @ faces))[None], prec[None])[0]
        assert ap == pytest.approx(wider_ap(rep_p, rep_g, rep_k)[0])


def test_detection_intervals_bracket_the_ap_and_state_their_unit():
    preds, gt, keeps = _detections()
    ivs = detection_ap_intervals(preds, gt, keeps, B=200, seed=4)
    for setting, keep in keeps.items():
        ap = wider_ap(preds, gt, keep)[0]
        assert ivs[setting].low <= ap <= ivs[setting].high
        assert ivs[setting].unit == "images" and ivs[setting].B == 200
    with pytest.raises(MetricInputError, match="gt_boxes: no image"):
        detection_ap_intervals({}, {}, keeps, B=10)


# ------------------------------------------------------------------ ROC band
def test_roc_band_covers_the_roc_and_skips_unmeasurable_far():
    r = np.random.default_rng(0)
    y = np.r_[np.ones(300, bool), np.zeros(3000, bool)]
    s = np.r_[r.normal(2, 1, 300), r.normal(0, 1, 3000)]
    summary = verification_summary(s, y)
    grid = band_grid(3000, points=10)
    assert grid[0] == pytest.approx(1 / 3000) and grid[-1] == 1.0
    band = verification_cis(summary["metrics"], s, y, B=200, band_far=[1e-5, *grid])
    assert band["far"] == grid  # 1e-5 < 1/3000: not measurable, left out
    from harness.metrics.verification import Roc

    roc = Roc(s, y)
    for far, lo, hi in zip(band["far"], band["tar_low"], band["tar_high"]):
        assert lo <= roc.tar_at_far(far).tar <= hi
    assert band["unit"] == "pairs" and band["B"] == 200
    assert verification_cis(summary["metrics"], s, y, B=20) is None
