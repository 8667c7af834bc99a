"""The JSON summaries stored in results.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.metrics import Metric
from harness.metrics._checks import MetricInputError
from harness.metrics.detection import FddbRoc
from harness.metrics.report import (
    detection_summary,
    downsample_curve,
    far_name,
    liveness_summary,
    verification_summary,
)
from harness.metrics.verification import Roc


def _lfw_like(seed=0, n_per_fold=600):
    r = np.random.default_rng(seed)
    y = np.tile(np.r_[np.ones(n_per_fold // 2), np.zeros(n_per_fold // 2)], 10).astype(int)
    s = r.standard_normal(y.size) + 3 * y
    return s, y, np.repeat(np.arange(10), n_per_fold)


def test_far_names():
    assert [far_name(t) for t in (1e-6, 1e-3, 0.1, 5e-4, 0.15)] == ["1e-6", "1e-3", "1e-1", "5e-4", "0.15"]


def test_verification_summary_keys_and_values():
    s, y, f = _lfw_like()
    out = verification_summary(s, y, f)
    json.dumps(out, allow_nan=False)  # strict JSON
    names = [m["name"] for m in out["metrics"]]
    assert names == ["accuracy"] + [f"tar_at_far_1e-{k}" for k in (6, 5, 4, 3, 2, 1)] + [
        "eer", "auc", "far_at_eer_threshold", "frr_at_eer_threshold"]
    metrics = {m["name"]: Metric.from_dict(m) for m in out["metrics"]}
    assert metrics["eer"].direction == "lower" and metrics["accuracy"].std is not None
    lfw = out["sections"]["lfw"]
    assert len(lfw["folds"]) == 10 and lfw["mean"] == metrics["accuracy"].value
    rows = {r["far"]: r for r in out["sections"]["tar_at_far"]}
    # 3,000 impostors: 1e-4 and below are n/a, 1e-3 is defined
    assert rows[1e-4]["tar"] is None and rows[1e-4]["defined"] is False
    assert rows[1e-3]["defined"] and rows[1e-3]["tar"] == Roc(s, y).tar_at_far(1e-3).tar
    assert metrics["tar_at_far_1e-5"].value is None
    assert out["sections"]["counts"] == {"genuine": 3000, "impostor": 3000}
    ops = {o["name"]: o for o in out["sections"]["operating_points"]}
    assert set(ops) == {"eer", "far_1e-3", "far_1e-2", "far_1e-1"}
    assert ops["far_1e-2"]["far"] <= 1e-2
    h = out["curves"]["hist"]
    assert sum(h["genuine"]["counts"]) == 3000 and h["genuine"]["edges"] == h["impostor"]["edges"]


def test_summary_without_folds_and_nearest_rule():
    s, y, _ = _lfw_like()
    out = verification_summary(s, y, rule="nearest", far_targets=(1e-3,))
    assert "lfw" not in out["sections"]
    assert out["sections"]["tar_at_far"][0]["rule"] == "nearest"
    with pytest.raises(MetricInputError, match="rule: 'loose'"):
        verification_summary(s, y, rule="loose")


def test_bootstrap_interval_brackets_the_value():
    s, y, _ = _lfw_like()
    out = verification_summary(s, y, far_targets=(1e-2,), bootstrap=30, seed=1)
    m = [m for m in out["metrics"] if m["name"] == "tar_at_far_1e-2"][0]
    lo, hi = m["ci"]
    assert lo <= m["value"] <= hi and hi - lo < 0.1


def test_curves_downsampled_with_exact_endpoints():
    r = np.random.default_rng(0)
    y = r.random(200_000) < 0.5
    s = r.standard_normal(y.size) + y
    out = verification_summary(s, y)
    roc = out["curves"]["roc"]
    full = Roc(s, y)
    assert len(roc["far"]) <= 2000 and len(out["curves"]["det"]["far"]) <= 2000
    assert (roc["far"][0], roc["tar"][0]) == (0.0, 0.0) and (roc["far"][-1], roc["tar"][-1]) == (1.0, 1.0)
    # the kept points lie on the exact curve and are in order
    assert np.all(np.diff(roc["far"]) >= 0) and np.all(np.diff(roc["tar"]) >= 0)
    idx = np.searchsorted(full.far, roc["far"], side="left")
    assert np.all(full.far[idx] == roc["far"])
    # log-FAR detail survives: points below FAR 1e-3
    assert sum(1 for v in roc["far"] if 0 < v < 1e-3) >= 50
    assert len(json.dumps(out)) < 300_000


def test_downsample_short_curve_untouched():
    x, y = downsample_curve(np.array([0, 0.5, 1.0]), np.array([0, 0.7, 1.0]))
    assert x == [0, 0.5, 1.0] and y == [0, 0.7, 1.0]


def test_liveness_summary():
    r = np.random.default_rng(2)
    y = np.r_[np.ones(100), np.zeros(150)].astype(int)
    kinds = np.r_[[""] * 100, ["print"] * 100, ["replay"] * 50]
    s = r.standard_normal(250) + 2 * y - 0.5 * (kinds == "replay")
    out = liveness_summary(s, y, kinds)
    json.dumps(out, allow_nan=False)
    sec = out["sections"]["liveness"]
    assert sec["threshold_source"] == "test" and sec["counts"]["per_species"] == {"print": 100, "replay": 50}
    assert sec["apcer"] == max(sec["apcer_per_species"].values())
    dev = liveness_summary(s, y, kinds, dev_scores=s[::-1], dev_labels=y[::-1], rule="bpcer20")
    assert dev["sections"]["liveness"]["threshold_source"] == "dev"
    given = liveness_summary(s, y, kinds, threshold=0.5)
    assert given["sections"]["liveness"]["threshold"] == 0.5
    assert {m["name"] for m in given["metrics"]} >= {"apcer", "bpcer", "acer", "hter"}


def test_detection_summary():
    prec = np.linspace(1, 0.5, 1000)
    rec = np.linspace(0, 0.9, 1000)
    fd = FddbRoc(np.array([0.9, 0.5]), np.array([10, 18]), np.array([0, 600]), 20)
    out = detection_summary({"easy": (0.9, prec, rec)}, fd, speed={"images_per_s": 40.0})
    json.dumps(out, allow_nan=False)
    names = {m["name"]: m["value"] for m in out["metrics"]}
    assert names["wider_ap_easy"] == 0.9
    assert names["fddb_tpr_at_fp_100"] == 0.5 and names["fddb_tpr_at_fp_1000"] == 0.9
    assert out["curves"]["fddb_roc"]["false_positives"] == [0.0, 600.0]
    with pytest.raises(MetricInputError, match="at least one"):
        detection_summary()
