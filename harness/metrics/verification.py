"""Verification metrics over similarity scores: ROC, DET, AUC, EER, TAR@FAR.

Conventions: scores are similarities, a pair is accepted when
``score >= threshold``, labels are 1 (genuine) and 0 (impostor).

The work is done once by :class:`Roc`, the exact ROC over every distinct
threshold (tied scores form one threshold).  It is built from counts per
distinct score -- one ``numpy.sort`` of all scores, one of the smaller class
and a ``searchsorted`` -- never an ``argsort``; every number after it is
an O(log n) search, except the AUC's one pass (``benchmarks/bench_metrics.py``
times 10 million scores against scikit-learn).  The functions below are thin
wrappers: build the :class:`Roc` yourself when several numbers are needed
from the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.metrics._checks import MetricInputError, check_pair, check_rate, check_threshold

__all__ = [
    "OperatingPoint",
    "Roc",
    "ThresholdErrors",
    "auc",
    "det",
    "eer",
    "errors_at_threshold",
    "far_frr",
    "roc",
    "tar_at_far",
]

RULES = ("strict", "nearest")
EER_METHODS = ("interpolated", "rocch")


@dataclass(frozen=True)
class OperatingPoint:
    """TAR at a FAR target.

    :param target: the FAR asked for.
    :param tar: TAR at the chosen threshold.
    :param far: FAR actually reached at that threshold.
    :param threshold: accept when ``score >= threshold`` (``inf``: accept nothing).
    :param rule: ``"strict"`` or ``"nearest"``.
    :param defined: False when ``target < 1 / N_impostor``: no impostor
        count can resolve that FAR, and reports print "n/a".
    """

    target: float
    tar: float
    far: float
    threshold: float
    rule: str
    defined: bool


@dataclass(frozen=True)
class ThresholdErrors:
    """Error counts at one fixed threshold (accept when ``score >= threshold``).

    :param false_accepts: impostor scores ``>= threshold`` of ``n_impostor``.
    :param false_rejects: genuine scores ``< threshold`` of ``n_genuine``.
    """

    threshold: float
    false_accepts: int
    n_impostor: int
    false_rejects: int
    n_genuine: int

    @property
    def far(self) -> float:
        return self.false_accepts / self.n_impostor

    @property
    def frr(self) -> float:
        return self.false_rejects / self.n_genuine


class Roc:
    """The exact ROC of ``scores`` / ``labels``.

    Points run from the strictest threshold to the most lenient: index 0 is
    the extra point ``(FAR, TAR) = (0, 0)`` at threshold ``+inf`` (as in
    scikit-learn's ``roc_curve``), then one point per distinct score in
    descending order; the last point accepts everything, ``(1, 1)``.

    Built without any ``argsort``: one ``numpy.sort`` of every score gives the
    distinct thresholds (run starts), one sort of the smaller class plus a
    ``searchsorted`` into the distinct values gives that class's count per
    threshold.  Only counts per distinct score matter, so ties never need a
    stable order.

    :ivar thresholds: (K+1,) float64, descending, ``thresholds[0] = inf`` (a
        reversed view of an ascending array; ``np.ascontiguousarray`` if you need one).
    :ivar tp: (K+1,) int64 genuine scores ``>= threshold``.
    :ivar fp: (K+1,) int64 impostor scores ``>= threshold``.
    :ivar n_genuine, n_impostor: class sizes.
    """

    def __init__(self, scores: object, labels: object) -> None:
        s, y = check_pair(scores, labels)
        self.n_genuine = int(np.count_nonzero(y))
        self.n_impostor = int(y.size - self.n_genuine)
        gen_smaller = self.n_genuine <= self.n_impostor
        minority = s[y] if gen_smaller else s[~y]  # a new array: sorted in place
        minority.sort()
        self._build(np.sort(s), minority, gen_smaller)

    @classmethod
    def from_classes(cls, genuine: object, impostor: object) -> "Roc":
        """Build from the two score sets separately."""
        from harness.metrics._checks import as_scores

        g = as_scores(genuine, "genuine")
        i = as_scores(impostor, "impostor")
        if g.size == 0 or i.size == 0:
            raise MetricInputError(
                f"{'genuine' if g.size == 0 else 'impostor'}: is empty; this metric needs both classes"
            )
        self = cls.__new__(cls)
        self.n_genuine, self.n_impostor = int(g.size), int(i.size)
        gen_smaller = g.size <= i.size
        values = np.concatenate([g, i])
        values.sort()
        self._build(values, np.sort(g if gen_smaller else i), gen_smaller)
        return self

    def _build(self, values: np.ndarray, minority: np.ndarray, minority_is_gen: bool) -> None:
        """``values``: every score ascending; ``minority``: the smaller class ascending."""
        n = values.size
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(values[1:], values[:-1], out=change[1:])
        starts = np.flatnonzero(change)  # first index of each distinct value
        del change
        k = starts.size
        ascending = np.empty(k + 1, dtype=np.float64)  # the distinct values, then +inf
        np.take(values, starts, out=ascending[:k])
        ascending[k] = np.inf
        del values
        # every minority score is one of the distinct values: its index is its group
        per_group = np.bincount(np.searchsorted(ascending[:k], minority), minlength=k)
        del minority
        self.thresholds = ascending[::-1]  # descending, a view: no second copy
        self.tp = np.empty(k + 1, dtype=np.int64)
        self.fp = np.empty(k + 1, dtype=np.int64)
        self.tp[0] = self.fp[0] = 0
        mine, other = (self.tp, self.fp) if minority_is_gen else (self.fp, self.tp)
        np.cumsum(per_group[::-1], out=mine[1:])  # minority scores >= each threshold
        del per_group
        np.subtract(n, starts[::-1], out=other[1:])  # every score >= each threshold ...
        other[1:] -= mine[1:]  # ... less the minority ones
        self._cache: dict[str, object] = {}

    # -- curves -------------------------------------------------------------
    @property
    def far(self) -> np.ndarray:
        return self.fp / self.n_impostor

    @property
    def tar(self) -> np.ndarray:
        return self.tp / self.n_genuine

    @property
    def frr(self) -> np.ndarray:
        return (self.n_genuine - self.tp) / self.n_genuine

    def __len__(self) -> int:
        return int(self.thresholds.size)

    def _far_at(self, j: int) -> float:
        """FAR of point ``j``, the same float as ``self.far[j]``."""
        return float(self.fp[j] / self.n_impostor)

    def _kept(self, lo: int, hi: int) -> np.ndarray:
        """Whether points ``lo .. hi-1`` are among the points scikit-learn's
        ``roc_curve(drop_intermediate=True)`` keeps: the start, the first and
        last threshold, and every point where the step in differs from the
        step out (a nonzero second difference of the counts)."""
        last = len(self) - 1
        idx = np.arange(lo, hi)
        keep = (idx <= 1) | (idx >= last)
        inner = idx[~keep]
        if inner.size:
            a, b = inner[0], inner[-1] + 2  # steps (i-1 -> i) and (i -> i+1) for every inner i
            dfp, dtp = np.diff(self.fp[a - 1:b]), np.diff(self.tp[a - 1:b])
            keep[~keep] = (dfp[1:] != dfp[:-1]) | (dtp[1:] != dtp[:-1])
        return keep

    def _kept_near(self, start: int, forward: bool) -> int | None:
        """The first kept point at or after ``start`` (``forward``), or the
        last at or before it; windows doubling from 64, so a long straight
        run of the curve costs its length and nothing else does."""
        n, width = len(self), 64
        while True:
            lo, hi = (start, min(n, start + width)) if forward else (max(0, start - width + 1), start + 1)
            found = np.flatnonzero(self._kept(lo, hi))
            if found.size:
                return lo + int(found[0] if forward else found[-1])
            if (forward and hi == n) or (not forward and lo == 0):
                return None
            start, width = (hi if forward else lo - 1), width * 2

    # -- numbers ------------------------------------------------------------
    def auc(self) -> float:
        """Area under the ROC (trapezoids; ties count one half), exact in integers."""
        dfp = np.diff(self.fp)
        area2 = int(np.dot(dfp, self.tp[1:] + self.tp[:-1]))
        return area2 / (2.0 * self.n_genuine * self.n_impostor)

    def tar_at_far(self, far: float, rule: str = "strict") -> OperatingPoint:
        """TAR at a FAR target; see :func:`tar_at_far`."""
        target = check_rate(far, "far")
        if rule not in RULES:
            raise MetricInputError(f"rule: {rule!r} is not one of {', '.join(RULES)}")
        defined = target * self.n_impostor >= 1.0 - 1e-9
        # FAR is nondecreasing along the curve: the last point with FAR <= target
        j = _first_index(lambda i: self._far_at(i) > target, len(self)) - 1  # point 0 has FAR 0
        if rule == "strict":
            # among thresholds with that TAR, the highest (lowest FAR)
            j = int(np.searchsorted(self.tp, self.tp[j], side="left"))
            return OperatingPoint(target, float(self.tp[j] / self.n_genuine), self._far_at(j),
                                  float(self.thresholds[j]), rule, bool(defined))
        j = self._nearest(j, target)
        return OperatingPoint(target, float(self.tp[j] / self.n_genuine), self._far_at(j),
                              float(self.thresholds[j]), rule, bool(defined))

    def _nearest(self, lo: int, target: float) -> int:
        """The kept point (:meth:`_kept`) whose FAR is nearest ``target``,
        the last one on equal distance (insightface: argmin over the flipped
        curve).  ``lo`` is the last point with FAR <= target.

        The last point of a vertical run (equal FAR) is always kept, so the
        answer is the last kept point at or below ``lo`` or the last point
        sharing the FAR of the first kept point above it.
        """
        below = self._kept_near(lo, forward=False)  # point 0 is kept: never None
        above = self._kept_near(lo + 1, forward=True) if lo + 1 < len(self) else None
        if above is not None and abs(self._far_at(above) - target) <= abs(self._far_at(below) - target):
            return int(np.searchsorted(self.fp, self.fp[above], side="right")) - 1
        return int(below)

    def _sklearn_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The points scikit-learn's ``roc_curve`` returns with ``drop_intermediate=True``
        (``(fps, tps, thresholds, fpr)``, computed once).

        scikit-learn drops an interior point when the steps into and out of
        it are equal (second differences of both counts zero); a step here is
        the (impostor, genuine) count of one distinct score.
        """
        if "sklearn" not in self._cache:
            k = len(self) - 1  # points after the (0, 0) start
            keep = np.ones(len(self), dtype=bool)
            if k > 2:
                step_fp, step_tp = np.diff(self.fp[1:]), np.diff(self.tp[1:])
                same = (step_fp[1:] == step_fp[:-1]) & (step_tp[1:] == step_tp[:-1])
                del step_fp, step_tp
                keep[2:-1] = ~same
            idx = np.flatnonzero(keep)
            fps = self.fp[idx]
            self._cache["sklearn"] = (fps, self.tp[idx], self.thresholds[idx], fps / self.n_impostor)
        return self._cache["sklearn"]  # type: ignore[return-value]

    def eer(self, method: str = "interpolated") -> tuple[float, float]:
        """(EER, threshold); see :func:`eer`."""
        if method not in EER_METHODS:
            raise MetricInputError(f"method: {method!r} is not one of {', '.join(EER_METHODS)}")
        thr = self._eer_threshold()
        if method == "interpolated":
            tp, fp, ng, ni = self.tp, self.fp, self.n_genuine, self.n_impostor

            def g(j: int) -> float:  # TAR + FAR - 1, nondecreasing along the curve
                return float(np.float64(tp[j] / ng) + np.float64(fp[j] / ni) - 1.0)

            i = _first_index(lambda j: g(j) >= 0.0, len(self))  # i >= 1: g(0) = -1
            g0, g1 = g(i - 1), g(i)
            lam = 0.0 if g1 == g0 else -g0 / (g1 - g0)
            far0, far1 = fp[i - 1] / ni, fp[i] / ni
            value = float(far0 + lam * (far1 - far0))
            return value, thr
        gen_desc, imp_desc = np.diff(self.tp), np.diff(self.fp)  # per distinct score, descending
        return _rocch_eer(gen_desc[::-1], imp_desc[::-1], self.n_genuine, self.n_impostor), thr

    def _eer_threshold(self) -> float:
        """Threshold of the ROC point with the smallest |FAR - FRR| (highest on ties)."""
        ng, ni, tp, fp = self.n_genuine, self.n_impostor, self.tp, self.fp

        def a(j: int) -> int:  # (FAR - FRR) * ng * ni, strictly increasing in j
            return int(fp[j]) * ng - (ng - int(tp[j])) * ni

        j = _first_index(lambda j: a(j) >= 0, len(self), lo=1)
        if j == len(self) or (j > 1 and abs(a(j - 1)) <= abs(a(j))):
            j -= 1
        return float(self.thresholds[j])


def _first_index(pred, n: int, lo: int = 0) -> int:
    """The first index in ``[lo, n)`` where a monotone ``pred`` holds (``n`` if none)."""
    hi = n
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _rocch_eer(gen: np.ndarray, imp: np.ndarray, n_gen: int, n_imp: int) -> float:
    """EER of the ROC convex hull, as BOSARIS ``rocch2eer`` / bob.measure ``eer_rocch``.

    ``gen`` / ``imp``: genuine and impostor counts per distinct score,
    ascending.  The hull is found with pool-adjacent-violators on the
    genuine fraction of each distinct score weighted by its count: the same
    fit as on the single labels sorted by score with genuine first within a
    tie, where PAV always pools the tie (a tie is never split).  Its vertices
    in (P_fa, P_miss); each hull segment whose line is ``a*pfa + b*pmiss = 1``
    proposes ``1 / (a + b)``; the EER is the largest proposal (axis-parallel
    segments propose 0).
    """
    from scipy.optimize import isotonic_regression

    size = gen + imp
    res = isotonic_regression(gen / size, weights=size.astype(np.float64), increasing=True)
    first = np.asarray(res.blocks[:-1], dtype=np.intp)  # first group of each block
    n_tar_blocks = np.add.reduceat(gen, first)  # genuine per block, exact
    widths = np.add.reduceat(size, first)
    # vertex k: everything in blocks < k is rejected
    tar_below = np.concatenate([[0], np.cumsum(n_tar_blocks)])
    non_below = np.concatenate([[0], np.cumsum(widths - n_tar_blocks)])
    pmiss = tar_below / n_gen
    pfa = (n_imp - non_below) / n_imp
    x1, x2 = pfa[:-1], pfa[1:]
    y1, y2 = pmiss[:-1], pmiss[1:]
    dx, dy = x1 - x2, y1 - y2
    ok = (dx != 0) & (dy != 0)
    if not ok.any():
        return 0.0
    x1, x2, y1, y2 = x1[ok], x2[ok], y1[ok], y2[ok]
    # solve [x1 y1; x2 y2] [a; b] = [1; 1]
    det_ = x1 * y2 - x2 * y1
    a = (y2 - y1) / det_
    b = (x1 - x2) / det_
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = 1.0 / (a + b)
    cand = cand[np.isfinite(cand)]
    return float(max(0.0, cand.max())) if cand.size else 0.0


# -- functional API -----------------------------------------------------------
def roc(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact ROC: ``(far, tar, thresholds)``, thresholds descending.

    One point per distinct score (ties are one threshold) plus the starting
    point (0, 0) at ``+inf``; equal to scikit-learn's
    ``roc_curve(labels, scores, drop_intermediate=False)``.
    """
    r = Roc(scores, labels)
    return r.far, r.tar, r.thresholds.copy()


def det(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DET points ``(far, frr, thresholds)``, the same points as :func:`roc`."""
    r = Roc(scores, labels)
    return r.far, r.frr, r.thresholds.copy()


def auc(scores: object, labels: object) -> float:
    """Area under the ROC; equals scikit-learn's ``roc_auc_score``."""
    return Roc(scores, labels).auc()


def far_frr(scores: object, labels: object, threshold: float) -> tuple[float, float]:
    """``(FAR, FRR)`` at ``threshold``: FAR = #{impostor >= t} / N_imp,
    FRR = #{genuine < t} / N_gen."""
    s, y = check_pair(scores, labels)
    t = check_threshold(threshold)
    acc = s >= t
    n_gen = int(y.sum())
    n_imp = y.size - n_gen
    return float(np.count_nonzero(acc & ~y) / n_imp), float(np.count_nonzero(~acc & y) / n_gen)


def errors_at_threshold(scores: object, labels: object, threshold: float) -> ThresholdErrors:
    """The counts behind :func:`far_frr` (what a binomial interval needs)."""
    s, y = check_pair(scores, labels)
    t = check_threshold(threshold)
    acc = s >= t
    n_gen = int(np.count_nonzero(y))
    return ThresholdErrors(t, int(np.count_nonzero(acc & ~y)), int(y.size - n_gen),
                           int(np.count_nonzero(~acc & y)), n_gen)


def tar_at_far(scores: object, labels: object, far: float, rule: str = "strict") -> OperatingPoint:
    """TAR at a FAR target.

    ``rule="strict"``: the largest TAR over thresholds whose FAR <= ``far``;
    of the thresholds reaching it, the highest (lowest FAR) is returned.
    When only the reject-all point qualifies, TAR = 0 at threshold ``inf``.

    ``rule="nearest"``: insightface's IJB evaluation — the point of
    scikit-learn's ``roc_curve`` (``drop_intermediate=True``) whose FPR is
    nearest the target; among equally near points the highest TAR.  The
    chosen FAR may exceed the target.

    Targets below ``1 / N_impostor`` are computed but flagged
    ``defined=False``.
    """
    return Roc(scores, labels).tar_at_far(far, rule)


def eer(scores: object, labels: object, method: str = "interpolated") -> tuple[float, float]:
    """Equal error rate and a threshold near it.

    ``method="interpolated"`` (facenet): the FPR where the piecewise-linear
    ROC through every point meets TPR = 1 - FPR.  ``method="rocch"``
    (BOSARIS / bob.measure ``eer_rocch``): the EER of the ROC convex hull.

    The threshold returned is that of the ROC point with the smallest
    |FAR - FRR| (the highest such threshold on ties), an operating point
    that can actually be used.
    """
    return Roc(scores, labels).eer(method)
