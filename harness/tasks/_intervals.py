"""Confidence intervals for the metrics every task writes (``intervals:`` in the run config).

One function per task, each called once by its task on the scores it has just
summarised: it fills the ``ci`` of the metric records in place (the numbers
come from :mod:`harness.metrics.uncertainty`) and states how in
``sections["intervals"]`` -- level, method, resampling unit, B, seed -- which
the report prints beside the protocol.  ``intervals.bootstrap: 0`` turns them
all off; a run then states ``"intervals": none``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from harness.metrics._checks import MetricInputError

if TYPE_CHECKING:
    from harness.config import IntervalSettings

__all__ = ["detection", "identification", "liveness", "settings_of", "verification"]


def settings_of(spec: Any) -> "IntervalSettings":
    """The run's interval settings (defaults for a spec made without them)."""
    from harness.config import IntervalSettings

    value = getattr(spec, "intervals", None)
    return value if isinstance(value, IntervalSettings) else IntervalSettings()


def _statement(cfg: "IntervalSettings", seed: int, unit: str, **extra: Any) -> dict[str, Any]:
    kw = cfg.kwargs(seed)
    return {"level": kw["level"], "method": kw["method"], "unit": unit, "B": kw["B"], "seed": kw["seed"],
            "binomial": kw["binomial"], **extra}


def _failed(result: dict, exc: Exception) -> dict:
    """Data an interval cannot be computed on does not fail the run: the metrics keep no
    interval and the statement says why."""
    result.setdefault("sections", {})["intervals"] = {"B": 0, "note": f"not computed: {exc}"}
    return result


def _known(ids: Any) -> bool:
    """Every identity known: label indices >= 0, or non-empty names."""
    a = np.asarray(ids)
    if a.dtype.kind in "biu":
        return bool(np.all(a >= 0))
    return bool(np.all(a.astype(str) != ""))


def _off(result: dict) -> dict:
    result.setdefault("sections", {})["intervals"] = {"B": 0, "note": "off (intervals.bootstrap: 0)"}
    return result


def verification(spec: Any, result: dict, scores: np.ndarray, labels: np.ndarray, folds: np.ndarray | None,
                 subject_a: np.ndarray | None = None, subject_b: np.ndarray | None = None) -> dict:
    """Intervals of a verification summary (accuracy, TAR@FAR, FAR / FRR at the EER threshold, EER,
    AUC) and the ROC / DET band (``curves["roc_band"]``).

    The unit is ``subjects`` (pigeonhole bootstrap over identities) when every
    pair's two identities are known, else ``pairs``; ``intervals.unit`` can
    force either (``subjects`` without identities falls back to pairs, stated).
    """
    from harness.metrics.uncertainty import band_grid, verification_cis

    cfg = settings_of(spec)
    if not cfg.enabled:
        return _off(result)
    known = (subject_a is not None and subject_b is not None and len(subject_a) == len(scores)
             and _known(subject_a) and _known(subject_b))
    unit = "subjects" if known and cfg.unit in ("auto", "subjects") else "pairs"
    why = ("identities of both images of every pair known" if unit == "subjects" else
           "identities not known for every pair" if cfg.unit != "pairs" else "intervals.unit: pairs")
    kw = cfg.kwargs(getattr(spec, "seed", 0))
    n_imp = int(np.count_nonzero(np.asarray(labels) == 0))
    t0 = time.perf_counter()
    try:
        band = verification_cis(
            result["metrics"], scores, labels, folds=folds, subject_a=subject_a if unit == "subjects" else None,
            subject_b=subject_b if unit == "subjects" else None, unit=unit, band_far=band_grid(n_imp), **kw)
    except MetricInputError as exc:
        return _failed(result, exc)
    if band:
        result.setdefault("curves", {})["roc_band"] = band
    result.setdefault("sections", {})["intervals"] = _statement(
        cfg, getattr(spec, "seed", 0), unit, unit_reason=why, wall_s=round(time.perf_counter() - t0, 2),
        fixed_threshold=("exact binomial (" + kw["binomial"] + ")") if unit == "pairs" else "the same bootstrap")
    return result


def liveness(spec: Any, summary: dict, scores: np.ndarray, labels: np.ndarray, species: Any) -> dict:
    """APCER (worst species) and BPCER: binomial at the fixed threshold; ACER, HTER: bootstrap over
    presentations within species; EER, AUC: bootstrap over presentations within class."""
    from harness.metrics.uncertainty import attach_by_name, liveness_intervals

    cfg = settings_of(spec)
    if not cfg.enabled:
        return _off(summary)
    kw = cfg.kwargs(getattr(spec, "seed", 0))
    thr = float(summary["sections"]["liveness"]["threshold"])
    try:
        attach_by_name(summary["metrics"], liveness_intervals(scores, labels, thr, species, **kw))
    except MetricInputError as exc:
        return _failed(summary, exc)
    summary["sections"]["intervals"] = _statement(
        cfg, getattr(spec, "seed", 0), "presentations",
        fixed_threshold=f"exact binomial ({kw['binomial']}) for APCER (worst species) and BPCER")
    return summary


def identification(spec: Any, out: dict, trials: Sequence[tuple[Any, Any, Any, Any]], *, open_set: bool,
                   candidate_list: int) -> dict:
    """rank-k (closed set) or FNIR / TPIR @ FPIR (open set), bootstrap over probe identities
    (all their searches in every trial) -- identities are always known in 1:N."""
    from harness.metrics.uncertainty import attach_by_name, identification_intervals

    cfg = settings_of(spec)
    if not cfg.enabled:
        out.setdefault("section", {})["intervals"] = {"B": 0, "note": "off (intervals.bootstrap: 0)"}
        return out
    kw = cfg.kwargs(getattr(spec, "seed", 0))
    kw.pop("binomial")
    unit = "probes" if cfg.unit == "pairs" else "subjects"
    names = {str(m["name"]) for m in out["metrics"]}
    ranks = sorted(int(n[4:]) for n in names if n.startswith("rank") and n[4:].isdigit())
    fpir: dict[float, str] = {}
    for n in names:
        if n.startswith("fnir_at_fpir_"):
            fpir[float(n[len("fnir_at_fpir_"):])] = n[len("fnir_at_fpir_"):]
    try:
        ivs = identification_intervals(trials, ranks=[] if open_set else ranks,
                                       fpir_targets=list(fpir) if open_set else [], candidate_list=candidate_list,
                                       unit=unit, **kw)
    except MetricInputError as exc:
        out.setdefault("section", {})["intervals"] = {"B": 0, "note": f"not computed: {exc}"}
        return out
    named = {}
    for key, iv in ivs.items():
        if key.startswith(("fnir_at_fpir:", "tpir_at_fpir:")):
            kind, t = key.split(":")
            named[f"{kind}_{fpir[float(t)]}"] = iv
        else:
            named[key] = iv
    attach_by_name(out["metrics"], named)
    out.setdefault("section", {})["intervals"] = _statement(cfg, getattr(spec, "seed", 0), unit)
    return out


def detection(spec: Any, metrics: list[dict], predictions: Mapping[str, np.ndarray],
              gt_boxes: Mapping[str, np.ndarray], keeps: Mapping[str, Mapping[str, np.ndarray]]) -> dict | None:
    """WIDER AP of each setting (``ap_<setting>``), bootstrap over images; returns the statement."""
    from harness.metrics.uncertainty import attach_by_name, detection_ap_intervals

    cfg = settings_of(spec)
    if not cfg.enabled:
        return {"B": 0, "note": "off (intervals.bootstrap: 0)"}
    kw = cfg.kwargs(getattr(spec, "seed", 0))
    kw.pop("binomial")
    try:
        ivs = detection_ap_intervals(predictions, gt_boxes, keeps, **kw)
    except MetricInputError as exc:
        return {"B": 0, "note": f"not computed: {exc}"}
    attach_by_name(metrics, {f"ap_{k}": v for k, v in ivs.items()})
    return _statement(cfg, getattr(spec, "seed", 0), "images",
                      note="detection scores min-max normalised once over all images")
