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

__all__ = ["detection", "identification", "inpainting", "landmarks", "liveness", "settings_of", "subject_arrays",
           "templates", "verification"]


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


def subject_arrays(pairs: Any) -> dict[str, np.ndarray]:
    """``{"subject_a", "subject_b"}``: the identity of both images of every pair, for ``scores.npz``
    (so ``harness score`` can redo the subject bootstrap); empty when any identity is unknown."""
    labels = getattr(getattr(pairs, "images", None), "labels", None)
    if labels is None:
        return {}
    a, b = np.asarray(labels)[np.asarray(pairs.pairs)].T
    return {"subject_a": a, "subject_b": b} if a.size and _known(a) and _known(b) else {}


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
        if key.startswith(("fnir_at_fpir:", "tpir_at_fpir:", "rank1_hit_at_fpir:")):
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


# -- IJB template protocols --------------------------------------------------
def _template_subjects(meta: Any) -> dict[int, Any]:
    """Template id -> subject, from the release's 1:N files (empty without them)."""
    out: dict[int, Any] = {}
    for tids, subjects in [*(meta.galleries or {}).values(), *([meta.probes] if meta.probes is not None else [])]:
        out.update(zip(np.asarray(tids).tolist(), np.asarray(subjects).tolist()))
    return out


def _template_unit(cfg: "IntervalSettings", meta: Any) -> tuple[str, np.ndarray | None, np.ndarray | None, str]:
    """The 1:1 resampling unit and the subject of each pair's two templates: the subjects the 1:N
    files name when they name every paired template, else the components of the mated-pair graph
    (:func:`~harness.metrics.uncertainty.mated_components`); ``pairs`` only when
    ``intervals.unit: pairs`` forces it."""
    from harness.metrics.uncertainty import mated_components

    pairs = np.asarray(meta.pairs)
    if cfg.unit == "pairs":
        return "pairs", None, None, "intervals.unit: pairs"
    who = _template_subjects(meta)
    if who and all(int(t) in who for t in np.unique(pairs)):
        a = np.array([who[int(t)] for t in pairs[:, 0]])
        b = np.array([who[int(t)] for t in pairs[:, 1]])
        return "subjects", a, b, "the 1:N files name the subject of every paired template"
    a, b = mated_components(pairs[:, 0], pairs[:, 1], meta.labels)
    return "subjects", a, b, ("subjects not named (no 1:N files, or templates outside them): the components of "
                              "the mated-pair graph stand for them")


def templates(spec: Any, out: dict, meta: Any, res: Mapping[str, Any]) -> dict:
    """Intervals of the IJB template protocols (:mod:`harness.tasks.templates`): 1:1 TAR@FAR
    (strict) by a bootstrap over subjects (named or inferred, :func:`_template_unit`), and per
    gallery the 1:N rank-k and TPIR@FPIR by a bootstrap over probe subjects (all their probe
    templates drawn together).  ``res`` is :func:`~harness.tasks.templates.evaluate_templates`'s
    result with each gallery's search kept (``search``)."""
    from harness.metrics.uncertainty import attach_by_name, identification_intervals, verification_cis
    from harness.tasks.templates import FPIR_TARGETS

    cfg = settings_of(spec)
    if not cfg.enabled:
        return _off(out)
    seed = getattr(spec, "seed", 0)
    kw = cfg.kwargs(seed)
    unit, sa, sb, why = _template_unit(cfg, meta)
    ver = res["verification"]
    try:
        verification_cis(out["metrics"], ver["scores"], np.asarray(meta.labels), subject_a=sa, subject_b=sb,
                         unit=unit, **kw)
        for g, row in (res.get("identification") or {}).items():
            found = row.get("search")
            if found is None or not (found.rank > 0).any():
                continue
            trial = [(np.asarray(meta.probes[1]), found.rank, found.mate_score, found.top_score)]
            open_set = bool((found.rank == 0).any())
            ranks = [k for k in (1, 5, 10) if f"rank{k}" in row]
            ivs = identification_intervals(trial, ranks=ranks, fpir_targets=list(FPIR_TARGETS) if open_set else [],
                                           candidate_list=1, unit="probes" if cfg.unit == "pairs" else "subjects",
                                           **{k: v for k, v in kw.items() if k != "binomial"})
            named = {}
            for key, iv in ivs.items():
                if key.startswith("tpir_at_fpir:"):
                    named[f"{g.lower()}_tpir_at_fpir_1e{int(round(np.log10(float(key.split(':')[1]))))}"] = iv
                elif key.startswith("rank"):
                    named[f"{g.lower()}_{key}"] = iv
            attach_by_name(out["metrics"], named)
    except MetricInputError as exc:
        return _failed(out, exc)
    out.setdefault("sections", {})["intervals"] = _statement(
        cfg, seed, unit, unit_reason=why,
        search_unit=("probe templates (within mated / non-mated)" if cfg.unit == "pairs" else
                     "probe subjects (all their probe templates)"))
    return out


# -- inpainting (meshface) -----------------------------------------------------
#: the meshface conditions: pairs of a clean face with the clean, meshed or restored second face
_CONDITIONS = ("clean", "meshed", "restored")


def _condition_records(metrics: list[dict], condition: str) -> dict[str, dict]:
    """The records of one condition keyed by their verification-summary name
    (``eer_meshed`` -> ``eer``, ``tar_at_far_1e-3_restored`` -> ``tar_at_far_1e-3``, ...)."""
    out: dict[str, dict] = {}
    suffix = f"_{condition}"
    for m in metrics:
        name = str(m.get("name", ""))
        if name.endswith(suffix) and not name.startswith(("psnr_", "ssim_")):
            out.setdefault(name[: -len(suffix)], m)
    return out


def inpainting(spec: Any, metrics: list[dict], scores: Mapping[str, np.ndarray], labels: np.ndarray,
               folds: np.ndarray | None, quality: Mapping[str, np.ndarray], mask_iou: np.ndarray | None = None,
               subject_a: np.ndarray | None = None, subject_b: np.ndarray | None = None) -> dict:
    """Intervals of the meshface metrics, in place; returns the statement.

    Per condition (clean / meshed / restored pairs): k-fold accuracy (with several folds),
    TAR@FAR, EER, AUC and the rates at the EER threshold as :func:`verification`.  PSNR / SSIM
    (and the mask IoU): the mean over pairs, bootstrapped from the same unit
    (:func:`~harness.metrics.uncertainty.mean_intervals`).  A one-fold run's accuracy (threshold
    chosen on the pairs it is measured on) gets none: it is optimistic by construction, and an
    interval around it would not cover the accuracy a fixed threshold reaches.
    """
    from harness.metrics.uncertainty import attach_by_name, mean_intervals, verification_cis

    cfg = settings_of(spec)
    if not cfg.enabled:
        return {"B": 0, "note": "off (intervals.bootstrap: 0)"}
    seed = getattr(spec, "seed", 0)
    kw = cfg.kwargs(seed)
    y = np.asarray(labels, dtype=np.int64)
    known = (subject_a is not None and subject_b is not None and len(subject_a) == len(y)
             and _known(subject_a) and _known(subject_b))
    unit = "subjects" if known and cfg.unit in ("auto", "subjects") else "pairs"
    subj = {"subject_a": subject_a, "subject_b": subject_b} if unit == "subjects" else {}
    multi = folds is not None and len(np.unique(folds)) > 1
    try:
        for c in _CONDITIONS:
            records = _condition_records(metrics, c)
            view = [{**m, "name": short} for short, m in records.items() if short != "accuracy" or multi]
            verification_cis(view, scores[c], y, folds=folds if multi else None, unit=unit, **subj, **kw)
            for m in view:
                if m.get("ci"):
                    records[m["name"]].update(ci=m["ci"], meta=m["meta"])
        per_pair = {k: np.asarray(v, dtype=np.float64) for k, v in quality.items()}
        if mask_iou is not None:
            per_pair["mask_iou"] = np.asarray(mask_iou, dtype=np.float64)
        strata = None if unit == "subjects" else y
        kw.pop("binomial")
        attach_by_name(metrics, mean_intervals(per_pair, unit=unit, strata=strata, **subj, **kw))
    except MetricInputError as exc:
        return {"B": 0, "note": f"not computed: {exc}"}
    return _statement(cfg, seed, unit, unit_reason=("identities of both images of every pair known" if unit ==
                                                    "subjects" else "identities not known for every pair"
                                                    if cfg.unit != "pairs" else "intervals.unit: pairs"),
                      without={"accuracy_*": "one fold: the threshold is chosen on the pairs it is measured on "
                                             "(optimistic by construction)"} if not multi else {})


# -- landmarks -----------------------------------------------------------------------
def landmarks(spec: Any, metrics: list[dict], errors: Sequence[tuple[str, str, np.ndarray, bool]],
              auc_threshold: float, thresholds: Sequence[float]) -> dict:
    """Intervals of a landmarks evaluation, in place; returns the statement.

    :param errors: ``(point set, normaliser, per-face NME, headline)`` per evaluated pair of
        them (``inf`` or NaN: no prediction), as :mod:`harness.tasks.landmarks` names its metrics.

    ``nme_<set>_<normaliser>`` (mean over faces with a prediction) and the headline's
    ``auc_<set>_at_<t>`` (mean of ``max(0, 1 - e/t)``, a face without prediction counting 0):
    bootstrap over faces; ``failure_rate_<set>_at_<t>`` (share of faces above a fixed error, no
    prediction counting): the binomial interval, with the rule of 3 when there is none."""
    from harness.metrics.uncertainty import attach_by_name, error_rate_interval, mean_intervals

    cfg = settings_of(spec)
    if not cfg.enabled:
        return {"B": 0, "note": "off (intervals.bootstrap: 0)"}
    seed = getattr(spec, "seed", 0)
    kw = cfg.kwargs(seed)
    binomial = kw.pop("binomial")
    named: dict[str, Any] = {}
    try:
        for label, kind, err, headline in errors:
            e = np.asarray(err, dtype=np.float64).reshape(-1)
            e = np.where(np.isnan(e), np.inf, e)
            finite = e[np.isfinite(e)]
            if finite.size:
                named[f"nme_{label}_{kind}"] = mean_intervals({"v": finite}, unit="faces", **kw).get("v")
            if not headline or not e.size:
                continue
            auc = np.clip(1.0 - e / auc_threshold, 0.0, None)
            named[f"auc_{label}_at_{auc_threshold:.2f}"] = mean_intervals({"v": auc}, unit="faces", **kw).get("v")
            for t in thresholds:
                named[f"failure_rate_{label}_at_{t:.2f}"] = error_rate_interval(
                    int(np.count_nonzero(e > t)), int(e.size), cfg.level, binomial)
    except MetricInputError as exc:
        return {"B": 0, "note": f"not computed: {exc}"}
    attach_by_name(metrics, {k: v for k, v in named.items() if v is not None})
    return _statement(cfg, seed, "faces", fixed_threshold=f"exact binomial ({binomial}) for the failure rates")
