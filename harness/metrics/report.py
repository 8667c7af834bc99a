"""JSON-ready summaries of metric results, as stored in ``results.json``.

Each summary returns ``{"metrics": [...], "sections": {...}, "curves": {...}}``
with plain Python numbers (``None`` where a value is undefined: an infinite
threshold, a FAR target below 1/N_impostor).  Curves are downsampled to at
most about 2,000 points with their exact endpoints kept.  The keys are
documented in ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from harness._values import finite_float
from harness.metrics._checks import MetricInputError, check_pair
from harness.metrics._record import Metric

__all__ = [
    "detection_summary",
    "downsample_curve",
    "far_name",
    "histograms",
    "liveness_summary",
    "verification_summary",
]

DEFAULT_FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
MAX_CURVE_POINTS = 2000


def far_name(target: float) -> str:
    """``1e-3`` -> ``"1e-3"``, ``5e-4`` -> ``"5e-4"``; otherwise ``%g``."""
    m, e = f"{target:.0e}".split("e")
    if math.isclose(float(f"{m}e{e}"), target, rel_tol=1e-12):
        return f"{m}e{int(e)}"
    return f"{target:g}"


_num = finite_float


def downsample_curve(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> tuple[list, list]:
    """At most ``max_points`` points of a curve ordered along its length.

    Keeps the first and last point, points evenly spaced in arc length (in
    the unit-scaled plot) and, for a positive nondecreasing ``x``, points
    evenly spaced in ``log10(x)`` so log-FAR plots keep their shape.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.size
    if n <= max_points:
        return x.tolist(), y.tolist()
    half = max_points // 2 - 1
    sx = np.ptp(x) or 1.0
    sy = np.ptp(y) or 1.0
    seg = np.hypot(np.diff(x) / sx, np.diff(y) / sy)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    picks = [np.array([0, n - 1])]
    if arc[-1] > 0:
        picks.append(np.searchsorted(arc, np.linspace(0, arc[-1], half), side="left"))
    else:
        picks.append(np.linspace(0, n - 1, half).astype(np.int64))
    pos = x > 0
    if np.all(np.diff(x) >= 0) and pos.any():
        lo = x[pos][0]
        if lo < x[-1]:
            targets = np.logspace(np.log10(lo), np.log10(x[-1]), half)
            picks.append(np.searchsorted(x, targets, side="left"))
    idx = np.unique(np.clip(np.concatenate(picks), 0, n - 1))
    if idx.size > max_points:  # cannot happen with the sizes above, but stay safe
        keep = np.unique(np.r_[0, np.linspace(0, idx.size - 1, max_points - 2).astype(np.int64), idx.size - 1])
        idx = idx[keep]
    return x[idx].tolist(), y[idx].tolist()


def histograms(genuine: np.ndarray, impostor: np.ndarray, bins: int = 50,
               names: tuple[str, str] = ("genuine", "impostor")) -> dict:
    """Score histograms of both classes on shared edges."""
    both = np.concatenate([genuine, impostor])
    edges = np.histogram_bin_edges(both, bins=bins)
    return {
        names[0]: {"edges": edges.tolist(), "counts": np.histogram(genuine, edges)[0].tolist()},
        names[1]: {"edges": edges.tolist(), "counts": np.histogram(impostor, edges)[0].tolist()},
    }


def _curves(roc) -> dict:
    far, tar = roc.far, roc.tar
    rx, ry = downsample_curve(far, tar)
    # DET: the same points, FRR = 1 - TAR
    dx, dy = downsample_curve(far, 1.0 - tar)
    return {"roc": {"far": rx, "tar": ry}, "det": {"far": dx, "frr": dy}}


def verification_summary(
    scores: object,
    labels: object,
    folds: object = None,
    *,
    far_targets: Sequence[float] = DEFAULT_FAR_TARGETS,
    rule: str = "strict",
    tie: str = "highest",
    bootstrap: int = 0,
    seed: int = 0,
) -> dict:
    """Every verification number and curve for one set of scored pairs.

    :param folds: fold id per pair; when given, the k-fold accuracy (threshold
        chosen on the other folds, :func:`~harness.metrics.lfw.kfold_accuracy_from_scores`).
    :param rule: TAR@FAR rule, ``"strict"`` or ``"nearest"``.
    :param bootstrap: replicates of a 95 % percentile pair bootstrap (drawn
        within class and fold) on the headline metrics, the strict TAR@FARs
        among them (:func:`~harness.metrics.uncertainty.attach_intervals`,
        which a caller that knows the subjects calls itself); 0 for none.
    """
    from harness.metrics.lfw import kfold_accuracy_from_scores
    from harness.metrics.verification import RULES, Roc

    if rule not in RULES:
        raise MetricInputError(f"rule: {rule!r} is not one of {', '.join(RULES)}")
    s, y = check_pair(scores, labels)
    roc = Roc(s, y)
    metrics: list[Metric] = []
    sections: dict[str, Any] = {}
    if folds is not None:
        kf = kfold_accuracy_from_scores(s, y, folds, tie=tie)
        sections["lfw"] = {
            "mean": kf.mean,
            "std": kf.std,
            "convention": kf.convention,
            "folds": [{"fold": int(f), "accuracy": float(a), "threshold": float(t)}
                      for f, a, t in zip(kf.folds, kf.accuracies, kf.thresholds)],
        }
        metrics.append(Metric("accuracy", kf.mean, "higher", f"{len(kf.folds)}-fold; " + kf.convention,
                              std=kf.std, meta={"n_folds": len(kf.folds)}))
    tar_rows, ops = [], []
    eer_value, eer_thr = roc.eer("interpolated")
    from harness.metrics.verification import far_frr

    e_far, e_frr = far_frr(s, y, eer_thr)
    ops.append({"name": "eer", "threshold": _num(eer_thr), "far": e_far, "frr": e_frr})
    conv = ("strict: largest TAR with FAR <= target" if rule == "strict"
            else "nearest: sklearn roc_curve point nearest the target FAR (insightface IJB)")
    for t in far_targets:
        op = roc.tar_at_far(t, rule)
        value = op.tar if op.defined else None
        tar_rows.append({"far": float(t), "tar": value, "threshold": _num(op.threshold) if op.defined else None,
                         "far_achieved": op.far if op.defined else None, "rule": rule, "defined": op.defined})
        name = far_name(t)
        metrics.append(Metric(f"tar_at_far_{name}", value, "higher", conv,
                              meta={"threshold": _num(op.threshold), "far_achieved": op.far, "rule": rule,
                                    "defined": op.defined, "n_impostor": roc.n_impostor}))
        if op.defined:
            ops.append({"name": f"far_{name}", "threshold": _num(op.threshold), "far": op.far,
                        "frr": 1.0 - op.tar})
    metrics.append(Metric("eer", eer_value, "lower", "interpolated: piecewise-linear ROC meets TPR = 1 - FPR",
                          meta={"threshold": _num(eer_thr)}))
    metrics.append(Metric("auc", roc.auc(), "higher", "area under the exact ROC (ties count 1/2)"))
    metrics.append(Metric("far_at_eer_threshold", e_far, "lower", "FAR at the EER operating threshold",
                          meta={"threshold": _num(eer_thr)}))
    metrics.append(Metric("frr_at_eer_threshold", e_frr, "lower", "FRR at the EER operating threshold",
                          meta={"threshold": _num(eer_thr)}))
    sections["tar_at_far"] = tar_rows
    sections["operating_points"] = ops
    sections["counts"] = {"genuine": roc.n_genuine, "impostor": roc.n_impostor}
    curves = _curves(roc)
    curves["hist"] = histograms(s[y], s[~y])
    records = [m.to_dict() for m in metrics]
    if bootstrap > 0:
        from harness.metrics.uncertainty import attach_intervals

        attach_intervals(records, s, y, folds=folds, B=bootstrap, seed=seed, tie=tie)
    return {"metrics": records, "sections": sections, "curves": curves}


def liveness_summary(
    scores: object,
    labels: object,
    attack_types: object = None,
    *,
    threshold: float | None = None,
    dev_scores: object = None,
    dev_labels: object = None,
    rule: str = "eer",
) -> dict:
    """ISO/IEC 30107-3 numbers for bona fide scores (labels: 1 = bona fide).

    The threshold is ``threshold`` when given, else fixed on
    ``dev_scores`` / ``dev_labels`` with ``rule``, else (stated in the
    section as ``"threshold_source": "test"``, an optimistic choice) fixed
    on the scores themselves with ``rule``.
    """
    from harness.metrics.liveness import apcer_bpcer_acer, hter, threshold_on_dev
    from harness.metrics.verification import Roc

    s, y = check_pair(scores, labels, labels_name="labels (1 = bona fide)")
    if threshold is not None:
        thr, source = float(threshold), "given"
    elif dev_scores is not None:
        thr, source = threshold_on_dev(dev_scores, dev_labels, rule), "dev"
    else:
        thr, source = threshold_on_dev(s, y, rule), "test"
    pad = apcer_bpcer_acer(s, y, attack_types, thr)
    h = hter(s, y, thr)
    roc = Roc(s, y)
    eer_value, _ = roc.eer()
    conv = f"ISO/IEC 30107-3 at threshold {thr:.6g} ({source}{'' if source == 'given' else ', rule ' + rule})"
    metrics = [
        Metric("apcer", pad.apcer, "lower", conv + "; max over attack species", meta={"worst_species": pad.worst_species}),
        Metric("bpcer", pad.bpcer, "lower", conv),
        Metric("acer", pad.acer, "lower", conv + "; (APCER + BPCER) / 2"),
        Metric("hter", h, "lower", conv + "; attacks pooled"),
        Metric("eer", eer_value, "lower", "interpolated, attacks pooled"),
        Metric("auc", roc.auc(), "higher", "attacks pooled"),
    ]
    species = {}
    if attack_types is not None:
        from harness.metrics.liveness import _species

        sp = _species(attack_types, y)
        species = {k: int(np.count_nonzero((~y) & (sp == k))) for k in sorted(set(sp[~y].tolist()))}
    else:
        species = {"attack": int(np.count_nonzero(~y))}
    section = {
        "threshold": thr,
        "threshold_source": source,
        "threshold_rule": None if source == "given" else rule,
        "apcer": pad.apcer,
        "apcer_per_species": pad.apcer_per_species,
        "worst_species": pad.worst_species,
        "bpcer": pad.bpcer,
        "acer": pad.acer,
        "hter": h,
        "counts": {"bona_fide": int(y.sum()), "attack": int((~y).sum()), "per_species": species},
    }
    curves = _curves(roc)
    curves["hist"] = histograms(s[y], s[~y], names=("bona_fide", "attack"))
    return {"metrics": [m.to_dict() for m in metrics], "sections": {"liveness": section}, "curves": curves}


def detection_summary(
    wider: Mapping[str, tuple[float, np.ndarray, np.ndarray]] | None = None,
    fddb: Any = None,
    *,
    fddb_fp_points: Sequence[int] = (100, 500, 1000),
    speed: Mapping[str, float] | None = None,
) -> dict:
    """Detection results: WIDER AP per setting and / or an FDDB discrete ROC.

    :param wider: setting (``easy`` / ``medium`` / ``hard``) -> the
        ``(ap, precision, recall)`` of :func:`~harness.metrics.detection.wider_ap`.
    :param fddb: a :class:`~harness.metrics.detection.FddbRoc`.
    :param speed: optional timing numbers, e.g. ``{"images_per_s": 38.5}``.
    """
    metrics: list[Metric] = []
    sections: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    if wider:
        sec = {}
        curves["pr"] = {}
        for setting, (ap, prec, rec) in wider.items():
            metrics.append(Metric(f"wider_ap_{setting}", ap, "higher",
                                  "WIDER FACE official evaluation, IoU >= 0.5, 1000 thresholds"))
            sec[setting] = {"ap": float(ap)}
            rx, py = downsample_curve(np.asarray(rec)[::-1], np.asarray(prec)[::-1])
            curves["pr"][setting] = {"recall": rx, "precision": py}
        sections["wider"] = sec
    if fddb is not None:
        pts = []
        for n in fddb_fp_points:
            v = fddb.tpr_at_fp(n)
            metrics.append(Metric(f"fddb_tpr_at_fp_{n}", v, "higher",
                                  "FDDB discrete score (overlap > 0.5), bipartite matching"))
            pts.append({"false_positives": int(n), "tpr": v})
        sections["fddb"] = {"n_faces": fddb.n_faces, "points": pts}
        fx, fy = downsample_curve(fddb.false_positives.astype(np.float64), fddb.tpr)
        curves["fddb_roc"] = {"false_positives": fx, "tpr": fy}
    if speed:
        sections["speed"] = {k: float(v) for k, v in speed.items()}
        for k, v in speed.items():
            metrics.append(Metric(k, float(v), "higher" if "per_s" in k else "lower", "measured speed"))
    if not metrics:
        raise MetricInputError("wider / fddb: give at least one detection result to summarise")
    return {"metrics": [m.to_dict() for m in metrics], "sections": sections, "curves": curves}
