"""Quality-aware evaluation: error-versus-reject characteristics (EVRC).

An EVRC (Grother and Tabassi, *Performance of biometric quality measures*,
IEEE TPAMI 29(4), 2007; ISO/IEC 29794-1:2016, "error versus reject
curve") asks whether a quality signal predicts recognition errors: reject
the fraction ``r`` of comparisons of lowest quality and see how the error
rate of the rest falls.  Here, as in the standard:

* a pair's quality is the **minimum** of its two images' qualities (the
  worse image limits the comparison);
* the threshold ``t`` is set **once**, before any rejection, at the FMR
  target over all impostor pairs (the lowest threshold with FMR <= target,
  :func:`~harness.metrics.demographics.global_threshold`), and held fixed;
* ``FNMR(r)``: among the genuine pairs left after rejecting the ``k =
  r * n`` of lowest quality, the share with ``score < t``.

Ties in quality (e.g. a signal with few distinct values) are broken by
expectation: when the cut falls inside a run of equal qualities, the
number of false non-matches removed is the run's share pro rata -- the
mean over every order of the tied pairs -- so the curve does not depend
on the input order (Schlett et al., *Considerations on the evaluation of
biometric quality assessment algorithms*, IEEE T-BIOM 6(1), 2024, discuss
why tie handling matters).

The table reports the area under ``FNMR(r)`` for ``r`` in ``[0,
max_reject]`` (trapezoids over every ``k``; ``max_reject`` = 0.2 by
default, the partial area Schlett et al. recommend), beside two
references over the same range: rejecting at random (``FNMR(0) *
max_reject``) and the oracle that rejects false non-matches first.
A useful signal lies well below random; lower is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from harness.metrics._checks import MetricInputError, check_pair

__all__ = ["DEFAULT_MAX_REJECT", "Evrc", "evrc", "pair_quality", "quality_report", "sharpness"]

DEFAULT_MAX_REJECT = 0.2
#: Reject fractions at which FNMR is tabulated.
REPORT_AT = (0.01, 0.05, 0.1, 0.2)
CURVE_POINTS = 101


def pair_quality(q_a: object, q_b: object) -> np.ndarray:
    """``min(q_a, q_b)`` per pair; an unknown (NaN) quality counts as the lowest (-inf)."""
    a = np.asarray(q_a, dtype=np.float64).reshape(-1)
    b = np.asarray(q_b, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise MetricInputError(f"q_a and q_b differ in length ({a.size} vs {b.size}); expected one per pair")
    a = np.where(np.isnan(a), -np.inf, a)
    b = np.where(np.isnan(b), -np.inf, b)
    return np.minimum(a, b)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D image (a no-reference
    focus measure: blur lowers it); numpy only."""
    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2 or min(g.shape) < 3:
        raise MetricInputError(f"gray: shape {g.shape}; expected a 2-D image of at least 3 x 3")
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


@dataclass
class Evrc:
    """One error-versus-reject curve.

    :param reject: (n,) fraction of genuine pairs rejected, k / n for k = 0..n-1.
    :param fnmr: (n,) FNMR of the genuine pairs kept.
    :param oracle: (n,) FNMR when false non-matches are rejected first.
    """

    threshold: float
    reject: np.ndarray
    fnmr: np.ndarray
    oracle: np.ndarray
    n_genuine: int
    false_non_matches: int
    unknown: int

    def at(self, r: float) -> float:
        """FNMR after rejecting the fraction ``r`` (linear between whole pairs)."""
        return float(np.interp(r, self.reject, self.fnmr))

    def area(self, max_reject: float = DEFAULT_MAX_REJECT) -> dict[str, float]:
        """Areas over ``[0, max_reject]``: the curve, random rejection, the oracle."""
        r = min(float(max_reject), float(self.reject[-1]))

        def area(y: np.ndarray) -> float:
            keep = self.reject <= r
            x = np.append(self.reject[keep], r)
            v = np.append(y[keep], np.interp(r, self.reject, y))
            return float(np.sum(np.diff(x) * (v[1:] + v[:-1]) / 2))

        return {"auc": area(self.fnmr), "auc_random": float(self.fnmr[0]) * r, "auc_oracle": area(self.oracle),
                "max_reject": r}


def evrc(scores: object, labels: object, quality: object, *, threshold: float | None = None,
         fmr_target: float = 1e-3) -> Evrc:
    """The EVRC of a pair-quality signal (see the module docstring).

    :param quality: (pairs,) pair quality, higher is better (NaN: unknown, rejected first).
    :param threshold: a fixed threshold; None sets it at ``fmr_target``
        over all impostor pairs (lowest threshold with FMR <= target).
    """
    s, y = check_pair(scores, labels)
    q = np.asarray(quality, dtype=np.float64).reshape(-1)
    if q.size != s.size:
        raise MetricInputError(f"quality: {q.size} entries for {s.size} scores; expected one per pair")
    if threshold is None:
        from harness.metrics.demographics import global_threshold

        threshold = global_threshold(s, y, fmr_target)[0]
    qg = q[y]
    unknown = int(np.isnan(qg).sum())
    qg = np.where(np.isnan(qg), -np.inf, qg)
    order = np.argsort(qg, kind="stable")
    qs, fnm = qg[order], (s[y] < threshold)[order].astype(np.int64)
    n, f = qs.size, int(fnm.sum())
    # tie runs: cumulative count and false non-matches at each run's end
    ends = np.flatnonzero(np.r_[qs[1:] != qs[:-1], True]) + 1
    cum_n = np.r_[0, ends].astype(np.float64)
    cum_f = np.r_[0, np.cumsum(fnm)[ends - 1]].astype(np.float64)
    k = np.arange(n, dtype=np.float64)
    removed = np.interp(k, cum_n, cum_f)  # expected false non-matches among the k rejected
    kept = n - k
    fnmr = (f - removed) / kept
    oracle = np.maximum(f - k, 0.0) / kept
    return Evrc(float(threshold), k / n, fnmr, oracle, n, f, unknown)


def _curve_points(e: Evrc, max_reject: float) -> dict[str, list]:
    r = np.linspace(0.0, min(max(max_reject * 2, 0.5), float(e.reject[-1])), CURVE_POINTS)
    return {"reject": r.tolist(), "fnmr": np.interp(r, e.reject, e.fnmr).tolist(),
            "oracle": np.interp(r, e.reject, e.oracle).tolist()}


def quality_report(scores: object, labels: object, signals: Mapping[str, tuple[object, object]], *,
                   descriptions: Mapping[str, str] | None = None, fmr_target: float = 1e-3,
                   max_reject: float = DEFAULT_MAX_REJECT, at: Sequence[float] = REPORT_AT) -> dict[str, Any]:
    """EVRCs of several image-quality signals (``sections.quality`` in results.json).

    :param signals: name -> (quality of each pair's first image, of its second); pair quality is their min.
    """
    from harness.metrics.demographics import global_threshold

    s, y = check_pair(scores, labels)  # both classes: the threshold needs impostors, the FNMR genuine pairs
    t, realised = global_threshold(s, y, fmr_target)
    out: dict[str, Any] = {
        "fmr_target": fmr_target, "threshold": t, "realised_fmr": realised,
        "pair_quality": "min of the two images", "max_reject": max_reject, "signals": {},
        "rule": "threshold fixed before rejection; genuine pairs of lowest quality rejected; ties by expectation",
    }
    for name, (qa, qb) in signals.items():
        e = evrc(s, y, pair_quality(qa, qb), threshold=t)
        out["n_genuine"], out["false_non_matches"] = e.n_genuine, e.false_non_matches
        out["signals"][name] = {
            "description": (descriptions or {}).get(name, ""),
            **e.area(max_reject), "fnmr_at": {f"{r:g}": e.at(r) for r in at},
            "unknown": e.unknown, "curve": _curve_points(e, max_reject),
        }
    return out
