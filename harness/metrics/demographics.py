"""Demographic differentials of a verification system at one global threshold.

The terms follow ISO/IEC 19795-10 and NIST FRVT Part 8 (Grother, Ngan and
Hanaoka, *Face Recognition Vendor Test Part 8: Demographic Effects*, NISTIR
8280, 2019): one decision threshold ``t`` is set for the whole system --
the lowest threshold whose FMR over all impostor pairs is at most the
target (:func:`global_threshold`) -- and every group is measured at that
same ``t`` (a pair is accepted when ``score >= t``).

For a group ``g`` of an attribute (``sex = female``):

* ``FNMR_g``: share of genuine pairs whose two images are both in ``g``
  that are rejected (``score < t``).  Genuine pairs whose images fall in
  different groups (an image-level attribute such as age) are counted as
  *mixed* and left out.
* ``FMR_g``: share of **same-group** impostor pairs (both images in ``g``,
  Part 8's demographically matched impostors) that are accepted.
* ``FMR_same`` / ``FMR_cross``: FMR over all same-group / all cross-group
  impostor pairs; ``FMR_same / FMR_cross`` > 1 means look-alikes within a
  group drive false matches.

Summaries over the groups ``G`` with pairs of the class:

* ``max/min``: ``max_g r_g / min_g r_g``;
* ``max/gmean``: ``max_g r_g / (prod_g r_g)^(1/|G|)`` -- the ratio to the
  geometric mean that Part 8 and ISO/IEC 19795-10 use, less driven by one
  extreme low group.  Both are undefined (None) when a rate is 0.
* **fairness discrepancy rate** (de Freitas Pereira and Marcel, *Fairness
  in Biometrics: a figure of merit to assess biometric verification
  systems*, IEEE T-BIOM 4(1), 2022; arXiv:2011.02395)::

      A(t) = max_{i,j} |FMR_i(t) - FMR_j(t)|,  B(t) = max_{i,j} |FNMR_i(t) - FNMR_j(t)|
      FDR(t) = 1 - (alpha * A(t) + (1 - alpha) * B(t))

  1 is perfectly fair; ``alpha`` (0.5 by default) weighs false matches.

Confidence intervals: a percentile bootstrap (:mod:`harness.metrics.uncertainty`
designs: subjects when the pair identities are given -- a pair carries the
draw count of both its subjects -- else pairs within genuine / impostor),
every statistic from the same replicates, with ``t`` **held fixed** (the
uncertainty of the rates at this operating threshold, not of the threshold
choice).  Replicates where a statistic is undefined are dropped and
counted (``invalid``).  Per-group rates also get an exact Clopper-Pearson
interval (``*_binomial``), which assumes independent pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from harness.metrics._checks import MetricInputError, check_pair, check_rate
from harness.metrics.uncertainty import (
    DEFAULT_B, Design, Interval, clopper_pearson, pair_design, percentile_interval, subject_design,
)

__all__ = [
    "DEFAULT_FMR_TARGET",
    "Differentials",
    "differentials",
    "fairness_discrepancy_rate",
    "global_threshold",
    "group_report",
    "group_report_by_subject",
    "ratio_max_gmean",
    "ratio_max_min",
]

DEFAULT_FMR_TARGET = 1e-3
#: Elements of one (replicates, pairs) weight block.
_BLOCK = 1 << 22


# ------------------------------------------------------------- the formulas
def ratio_max_min(rates: Sequence[float]) -> float | None:
    """``max / min`` of the rates; None when a rate is 0 or fewer than two groups."""
    r = np.asarray(rates, dtype=np.float64)
    if r.size < 2 or not np.all(np.isfinite(r)) or r.min() <= 0:
        return None
    return float(r.max() / r.min())


def ratio_max_gmean(rates: Sequence[float]) -> float | None:
    """``max / geometric mean`` of the rates; None when a rate is 0 or fewer than two groups."""
    r = np.asarray(rates, dtype=np.float64)
    if r.size < 2 or not np.all(np.isfinite(r)) or r.min() <= 0:
        return None
    return float(r.max() / np.exp(np.mean(np.log(r))))


def fairness_discrepancy_rate(fmr: Sequence[float], fnmr: Sequence[float], alpha: float = 0.5) -> float | None:
    """FDR = 1 - (alpha * max|FMR_i - FMR_j| + (1 - alpha) * max|FNMR_i - FNMR_j|)
    (de Freitas Pereira and Marcel 2022); None with fewer than two groups on either side."""
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise MetricInputError(f"alpha: {alpha!r} is outside [0, 1]; it weighs FMR against FNMR")
    f, n = np.asarray(fmr, np.float64), np.asarray(fnmr, np.float64)
    if f.size < 2 or n.size < 2:
        return None
    return float(1.0 - (a * (f.max() - f.min()) + (1.0 - a) * (n.max() - n.min())))


def global_threshold(scores: object, labels: object, fmr_target: float = DEFAULT_FMR_TARGET) -> tuple[float, float]:
    """``(t, realised FMR)``: the lowest threshold whose FMR over all impostor pairs is
    ``<= fmr_target`` -- the operating point "FMR = target" of FRVT Part 8, reached as
    closely as the impostor count allows (``score >= t`` accepts).

    With ``k = floor(target * n)`` false matches allowed, ``t`` lies just above the
    ``(k+1)``-th highest impostor score; ``k >= n`` accepts every pair (``t = -inf``).
    """
    s, y = check_pair(scores, labels)
    target = check_rate(fmr_target, "fmr_target")
    imp = np.sort(s[~y])[::-1]
    n = imp.size
    k = int(math.floor(target * n))
    k += (k + 1) / n <= target  # floor of a product that rounded down
    k -= k / n > target
    t = -math.inf if k >= n else float(np.nextafter(imp[k], np.inf))
    return t, float(np.count_nonzero(imp >= t) / n)


# ------------------------------------------------------------ the statistic
def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _row_ratio(rates: np.ndarray, gmean: bool) -> np.ndarray:
    """Row-wise max/min or max/gmean of a (reps, groups) array; NaN where a rate is 0 or NaN."""
    ok = np.all(np.isfinite(rates), axis=1) & np.all(rates > 0, axis=1)
    safe = np.where(np.isfinite(rates) & (rates > 0), rates, 1.0)
    den = np.exp(np.mean(np.log(safe), axis=1)) if gmean else safe.min(axis=1)
    return np.where(ok, safe.max(axis=1) / den, np.nan)


class _Statistic:
    """Every differential from one (reps, pairs) weight block: counts by matrix products."""

    def __init__(self, labels: np.ndarray, accepted: np.ndarray, ga: np.ndarray, gb: np.ndarray,
                 names: list[str], alpha: float) -> None:
        same = (ga == gb) & (ga >= 0)
        cols_den, cols_err = [], []
        for g in range(len(names)):
            both = same & (ga == g)
            cols_den += [both & labels, both & ~labels]
            cols_err += [both & labels & ~accepted, both & ~labels & accepted]
        imp_same, imp_cross = same & ~labels, (ga != gb) & (ga >= 0) & (gb >= 0) & ~labels
        cols_den += [imp_same, imp_cross]
        cols_err += [imp_same & accepted, imp_cross & accepted]
        self.den = np.stack(cols_den, axis=1).astype(np.float64)
        self.err = np.stack(cols_err, axis=1).astype(np.float64)
        n_gen, n_imp = self.den[:, 0:-2:2].sum(axis=0), self.den[:, 1:-2:2].sum(axis=0)
        self.gen_groups = np.flatnonzero(n_gen > 0)  # groups with genuine pairs
        self.imp_groups = np.flatnonzero(n_imp > 0)
        self.names, self.alpha = names, alpha

    def __call__(self, w: np.ndarray) -> dict[str, np.ndarray]:
        wf = w.astype(np.float64, copy=False)
        rates = _safe_div(wf @ self.err, wf @ self.den)
        fnmr = rates[:, 0:-2:2][:, self.gen_groups]
        fmr = rates[:, 1:-2:2][:, self.imp_groups]
        out: dict[str, np.ndarray] = {}
        for j, g in enumerate(self.gen_groups):
            out[f"fnmr:{self.names[g]}"] = fnmr[:, j]
        for j, g in enumerate(self.imp_groups):
            out[f"fmr:{self.names[g]}"] = fmr[:, j]
        out["fmr_same"], out["fmr_cross"] = rates[:, -2], rates[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out["same_over_cross"] = np.where(rates[:, -1] > 0, rates[:, -2] / rates[:, -1], np.nan)
        if fmr.shape[1] >= 2:
            out["fmr_max_min"], out["fmr_max_gmean"] = _row_ratio(fmr, False), _row_ratio(fmr, True)
        if fnmr.shape[1] >= 2:
            out["fnmr_max_min"], out["fnmr_max_gmean"] = _row_ratio(fnmr, False), _row_ratio(fnmr, True)
        if fmr.shape[1] >= 2 and fnmr.shape[1] >= 2:
            spread_a = np.nanmax(fmr, axis=1) - np.nanmin(fmr, axis=1)
            spread_b = np.nanmax(fnmr, axis=1) - np.nanmin(fnmr, axis=1)
            bad = ~(np.all(np.isfinite(fmr), axis=1) & np.all(np.isfinite(fnmr), axis=1))
            out["fdr"] = np.where(bad, np.nan, 1.0 - (self.alpha * spread_a + (1 - self.alpha) * spread_b))
        return out


def _intervals(stat: _Statistic, design: Design, B: int, seed: int, level: float) -> dict[str, Interval]:
    """Percentile intervals of every statistic from one set of draws (the
    same draws :func:`harness.metrics.uncertainty.bootstrap` makes for this seed)."""
    rng = np.random.default_rng(seed)
    reps: dict[str, list[np.ndarray]] = {}
    step = max(1, _BLOCK // max(design.n_pairs, 1))
    for start in range(0, B, step):
        for k, v in stat(design.weights(rng, min(step, B - start))).items():
            reps.setdefault(k, []).append(v)
    out = {}
    for k, parts in reps.items():
        r = np.concatenate(parts)
        finite = r[np.isfinite(r)]
        if finite.size == 0:
            continue
        lo, hi = percentile_interval(finite, level)
        extra = {"invalid": int(r.size - finite.size)} if finite.size < r.size else {}
        out[k] = Interval(lo, hi, level, "percentile", design.unit, int(B), int(seed), extra)
    return out


# ------------------------------------------------------------------ results
@dataclass
class Differentials:
    """Differentials of one attribute (JSON-ready with :meth:`to_dict`)."""

    attribute: str
    threshold: float
    groups: list[dict[str, Any]]
    summary: dict[str, Any]
    counts: dict[str, int]
    ci: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.attribute, "threshold": self.threshold, "groups": self.groups,
                "summary": self.summary, "counts": self.counts, "ci": self.ci}


def _codes(group_a: object, group_b: object, n: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    a = np.asarray(group_a, dtype=object).reshape(-1)
    b = np.asarray(group_b, dtype=object).reshape(-1)
    if a.size != n or b.size != n:
        raise MetricInputError(f"group_a / group_b: {a.size} / {b.size} entries for {n} scores; expected one per pair")
    text_a = ["" if v is None else str(v) for v in a]
    text_b = ["" if v is None else str(v) for v in b]
    names = sorted({v for v in (*text_a, *text_b) if v})
    if not names:
        raise MetricInputError("group_a / group_b: no pair has a known group; check the groups file's keys")
    index = {g: i for i, g in enumerate(names)}
    return (np.array([index.get(v, -1) for v in text_a], np.int64),
            np.array([index.get(v, -1) for v in text_b], np.int64), names)


def _iv(intervals: Mapping[str, Interval], key: str) -> list[float] | None:
    iv = intervals.get(key)
    return None if iv is None else [iv.low, iv.high]


def _group_rows(stat: _Statistic, names: list[str], intervals: Mapping[str, Interval], level: float) -> list[dict]:
    rows = []
    den, err = stat.den.sum(axis=0), stat.err.sum(axis=0)
    for g, name in enumerate(names):
        row: dict[str, Any] = {"group": name}
        for off, kind, n_key, e_key in ((0, "fnmr", "genuine", "false_non_matches"),
                                        (1, "fmr", "impostor", "false_matches")):
            n, k = int(den[2 * g + off]), int(err[2 * g + off])
            row[n_key], row[e_key] = n, k
            row[kind] = k / n if n else None
            row[f"{kind}_ci"] = _iv(intervals, f"{kind}:{name}") if n else None
            row[f"{kind}_binomial"] = list(clopper_pearson(k, n, level)) if n else None
        rows.append(row)
    return rows


def _summary(rows: list[dict], stat: _Statistic, intervals: Mapping[str, Interval], alpha: float) -> dict:
    fmr = [r["fmr"] for r in rows if r["fmr"] is not None]
    fnmr = [r["fnmr"] for r in rows if r["fnmr"] is not None]
    den, err = stat.den.sum(axis=0), stat.err.sum(axis=0)
    same = err[-2] / den[-2] if den[-2] else None
    cross = err[-1] / den[-1] if den[-1] else None
    values = {
        "fmr_max_min": ratio_max_min(fmr), "fmr_max_gmean": ratio_max_gmean(fmr),
        "fnmr_max_min": ratio_max_min(fnmr), "fnmr_max_gmean": ratio_max_gmean(fnmr),
        "fdr": fairness_discrepancy_rate(fmr, fnmr, alpha),
        "fmr_same": same, "fmr_cross": cross,
        "same_over_cross": same / cross if same is not None and cross else None,
    }
    out: dict[str, Any] = {k: {"value": v, "ci": _iv(intervals, k) if v is not None else None}
                           for k, v in values.items()}
    out["fdr"]["alpha"] = alpha
    if len(fmr) >= 2 and len(fnmr) >= 2:
        out["fdr"]["A"], out["fdr"]["B"] = max(fmr) - min(fmr), max(fnmr) - min(fnmr)
    out["impostor_same"], out["impostor_cross"] = int(den[-2]), int(den[-1])
    return out


def _design(labels: np.ndarray, subject_a: object, subject_b: object) -> Design:
    if subject_a is None:
        return pair_design(labels.size, labels.astype(np.int64))
    d = subject_design(subject_a, subject_b)
    if d.n_pairs != labels.size:
        raise MetricInputError(f"subject_a: {d.n_pairs} entries for {labels.size} scores; expected one per pair")
    return d


def differentials(
    scores: object, labels: object, group_a: object, group_b: object, *, attribute: str = "group",
    threshold: float | None = None, fmr_target: float = DEFAULT_FMR_TARGET, subject_a: object = None,
    subject_b: object = None, B: int = DEFAULT_B, seed: int = 0, level: float = 0.95, alpha: float = 0.5,
) -> Differentials:
    """Per-group FMR / FNMR at one global threshold, their ratios, same- vs
    cross-group FMR and the FDR, each with a bootstrap interval.

    :param group_a, group_b: the group of each pair's first / second image
        (``None`` or ``""`` when unknown).
    :param threshold: a fixed threshold; None sets it at ``fmr_target``
        over all impostor pairs (:func:`global_threshold`).
    :param subject_a, subject_b: identities of each pair: the bootstrap
        then resamples subjects; without them, pairs within each label.
    :param B: replicates (0: no intervals).
    """
    s, y = check_pair(scores, labels)
    if int(B) != B or B < 0:
        raise MetricInputError(f"B: {B!r}; expected a whole number of replicates >= 0")
    if not 0.0 <= float(alpha) <= 1.0:
        raise MetricInputError(f"alpha: {alpha!r} is outside [0, 1]; it weighs FMR against FNMR in the FDR")
    ga, gb, names = _codes(group_a, group_b, s.size)
    if threshold is None:
        t, _ = global_threshold(s, y, fmr_target)
        rule = f"lowest threshold with FMR <= {fmr_target:g} over all impostor pairs"
    else:
        t = float(threshold)
        rule = "given"
    stat = _Statistic(y, s >= t, ga, gb, names, float(alpha))
    intervals: dict[str, Interval] = {}
    ci: dict[str, Any] = {}
    if B:
        design = _design(y, subject_a, subject_b)
        intervals = _intervals(stat, design, int(B), int(seed), level)
        ci = {"method": "percentile", "unit": design.unit, "B": int(B), "seed": int(seed), "level": level,
              "threshold": "held fixed"}
    rows = _group_rows(stat, names, intervals, level)
    known = (ga >= 0) & (gb >= 0)
    counts = {"pairs": int(s.size), "unknown": int((~known).sum()),
              "genuine_mixed": int((known & (ga != gb) & y).sum()), "threshold_rule": rule}
    return Differentials(attribute, float(t), rows, _summary(rows, stat, intervals, float(alpha)), counts, ci)


def group_report(
    scores: object, labels: object, attrs_a: Sequence[Mapping[str, str]], attrs_b: Sequence[Mapping[str, str]],
    attributes: Sequence[str], *, fmr_target: float = DEFAULT_FMR_TARGET, source: str = "", key: str = "",
    **kw: Any,
) -> dict[str, Any]:
    """:func:`differentials` for each attribute at the one global threshold
    (``sections.demographics`` in results.json).  ``attrs_a`` / ``attrs_b``:
    each pair's image attributes ({attribute: group})."""
    s, y = check_pair(scores, labels)
    if len(attrs_a) != s.size or len(attrs_b) != s.size:
        raise MetricInputError(f"attrs_a / attrs_b: {len(attrs_a)} / {len(attrs_b)} entries for {s.size} pairs")
    t, realised = global_threshold(s, y, fmr_target)
    out: dict[str, Any] = {"source": source, "key": key, "fmr_target": fmr_target, "threshold": t,
                           "realised_fmr": realised, "attributes": {}, "skipped": {}}
    for attr in attributes:
        a = [m.get(attr) for m in attrs_a]
        b = [m.get(attr) for m in attrs_b]
        try:
            out["attributes"][attr] = differentials(s, y, a, b, attribute=attr, threshold=t, **kw).to_dict()
        except MetricInputError as exc:  # e.g. no pair has a known group of this attribute
            out["skipped"][attr] = str(exc)
        else:
            out["attributes"][attr]["counts"]["threshold_rule"] = (
                f"lowest threshold with FMR <= {fmr_target:g} over all impostor pairs "
                f"(realised {realised:.3g}), held fixed for every group")
    if not math.isfinite(t):
        out["note"] = "the FMR target is below 1/impostor pairs: every pair is rejected at this threshold"
    return out


def group_report_by_subject(scores: object, labels: object, subject_a: object, subject_b: object | None,
                            table: Any, *, fmr_target: float = DEFAULT_FMR_TARGET, **kw: Any) -> dict[str, Any]:
    """:func:`group_report` for pairs named by their people (``harness score``'s
    ``subject`` / ``subject_a,subject_b`` columns) and an identity-keyed
    :class:`~harness.formats.groups.GroupTable`; the bootstrap resamples subjects."""
    if table.key != "identity":
        raise MetricInputError(f"{table.source or 'groups'}: keyed by {table.key}; a score file names people, "
                               "so the groups file needs an 'identity' column")
    a = np.asarray(subject_a).astype(str).reshape(-1)
    b = a if subject_b is None else np.asarray(subject_b).astype(str).reshape(-1)
    attrs_a = [table.values.get(x, {}) for x in a]
    attrs_b = [table.values.get(x, {}) for x in b]
    if not any(attrs_a) and not any(attrs_b):
        raise MetricInputError(f"{table.source or 'groups'}: no identity matches a subject of the scores "
                               f"(e.g. {a[0]!r}); the groups file's identities must be spelled as in the file")
    return group_report(scores, labels, attrs_a, attrs_b, table.attributes, fmr_target=fmr_target,
                        source=table.source, key=table.key, subject_a=a, subject_b=b, **kw)
