"""Verification metrics over similarity scores: ROC, DET, AUC, EER, TAR@FAR.

Conventions: scores are similarities, a pair is accepted when
``score >= threshold``, labels are 1 (genuine) and 0 (impostor).

The work is done once by :class:`Roc`, the exact ROC over every distinct
threshold (tied scores form one threshold).  It is built with two
``numpy.sort`` calls and one merge, never an ``argsort`` of the whole input,
so 10 million scores take about a second.  The functions below are thin
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
    "auc",
    "det",
    "eer",
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


class Roc:
    """The exact ROC of ``scores`` / ``labels``.

    Points run from the strictest threshold to the most lenient: index 0 is
    the extra point ``(FAR, TAR) = (0, 0)`` at threshold ``+inf`` (as in
    scikit-learn's ``roc_curve``), then one point per distinct score in
    descending order; the last point accepts everything, ``(1, 1)``.

    :ivar thresholds: (K+1,) float64, descending, ``thresholds[0] = inf``.
    :ivar tp: (K+1,) int64 genuine scores ``>= threshold``.
    :ivar fp: (K+1,) int64 impostor scores ``>= threshold``.
    :ivar n_genuine, n_impostor: class sizes.
    """

    def __init__(self, scores: object, labels: object) -> None:
        s, y = check_pair(scores, labels)
        gen = np.sort(s[y])
        imp = np.sort(s[~y])
        self.n_genuine = int(gen.size)
        self.n_impostor = int(imp.size)
        self._build(gen, imp)

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
        self._build(np.sort(g), np.sort(i))
        return self

    def _build(self, gen: np.ndarray, imp: np.ndarray) -> None:
        # Merge the two sorted runs; a stable sort of two sorted runs is a
        # single merge pass.  Genuine come first within a tie (needed by the
        # ROC convex hull; irrelevant to the counts).
        merged = np.concatenate([gen, imp])
        order = np.argsort(merged, kind="stable")
        values = merged[order]
        is_gen = order < gen.size
        del merged, order
        n = values.size
        # first index of each distinct value (ascending)
        change = np.empty(n, dtype=bool)
        change[0] = True
        np.not_equal(values[1:], values[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        del change
        cum_gen = np.empty(n + 1, dtype=np.int64)
        cum_gen[0] = 0
        np.cumsum(is_gen, out=cum_gen[1:])
        gen_below = cum_gen[starts]
        tp = self.n_genuine - gen_below  # genuine >= value
        fp = (n - starts) - tp  # impostor >= value
        self._sorted = (values, is_gen)  # ascending, kept for the convex hull
        k = starts.size
        self.thresholds = np.empty(k + 1, dtype=np.float64)
        self.thresholds[0] = np.inf
        self.thresholds[1:] = values[starts][::-1]
        self.tp = np.empty(k + 1, dtype=np.int64)
        self.fp = np.empty(k + 1, dtype=np.int64)
        self.tp[0] = self.fp[0] = 0
        self.tp[1:] = tp[::-1]
        self.fp[1:] = fp[::-1]

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
        if rule == "strict":
            far_arr = self.far
            j = int(np.searchsorted(far_arr, target, side="right")) - 1  # far is nondecreasing
            j = max(j, 0)
            # among thresholds with that TAR, the highest (lowest FAR)
            j = int(np.searchsorted(self.tp, self.tp[j], side="left"))
            return OperatingPoint(target, float(self.tp[j] / self.n_genuine), float(far_arr[j]),
                                  float(self.thresholds[j]), rule, bool(defined))
        fps, tps, thr = self._sklearn_points()
        fpr = fps / self.n_impostor
        dist = np.abs(fpr - target)
        # insightface flips the arrays before argmin: the last minimum wins
        j = fpr.size - 1 - int(np.argmin(dist[::-1]))
        return OperatingPoint(target, float(tps[j] / self.n_genuine), float(fpr[j]), float(thr[j]),
                              rule, bool(defined))

    def _sklearn_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The points scikit-learn's ``roc_curve`` returns with ``drop_intermediate=True``."""
        fps, tps, thr = self.fp[1:], self.tp[1:], self.thresholds[1:]
        if fps.size > 2:
            keep = np.empty(fps.size, dtype=bool)
            keep[0] = keep[-1] = True
            keep[1:-1] = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
            fps, tps, thr = fps[keep], tps[keep], thr[keep]
        return (np.concatenate([[0], fps]), np.concatenate([[0], tps]),
                np.concatenate([[np.inf], thr]))

    def eer(self, method: str = "interpolated") -> tuple[float, float]:
        """(EER, threshold); see :func:`eer`."""
        if method not in EER_METHODS:
            raise MetricInputError(f"method: {method!r} is not one of {', '.join(EER_METHODS)}")
        thr = self._eer_threshold()
        if method == "interpolated":
            far, tar = self.far, self.tar
            g = tar + far - 1.0  # nondecreasing from -1 to +1 along the curve
            i = int(np.searchsorted(g, 0.0, side="left"))  # first g >= 0 (i >= 1)
            g0, g1 = g[i - 1], g[i]
            lam = 0.0 if g1 == g0 else -g0 / (g1 - g0)
            value = float(far[i - 1] + lam * (far[i] - far[i - 1]))
            return value, thr
        return _rocch_eer(*self._sorted, self.n_genuine, self.n_impostor), thr

    def _eer_threshold(self) -> float:
        """Threshold of the ROC point with the smallest |FAR - FRR| (highest on ties)."""
        diff = np.abs(self.fp[1:] * self.n_genuine - (self.n_genuine - self.tp[1:]) * self.n_impostor)
        j = int(np.argmin(diff)) + 1
        return float(self.thresholds[j])


def _rocch_eer(values: np.ndarray, is_gen: np.ndarray, n_gen: int, n_imp: int) -> float:
    """EER of the ROC convex hull, as BOSARIS ``rocch2eer`` / bob.measure ``eer_rocch``.

    The hull is found with pool-adjacent-violators on the labels sorted by
    ascending score, genuine first within a tie (so a tie is always pooled,
    never split).  Its vertices in (P_fa, P_miss); each hull segment whose
    line is ``a*pfa + b*pmiss = 1`` proposes ``1 / (a + b)``; the EER is the
    largest proposal (axis-parallel segments propose 0).
    """
    from scipy.optimize import isotonic_regression

    res = isotonic_regression(is_gen.astype(np.float64), increasing=True)
    widths = np.asarray(res.weights, dtype=np.int64)
    means = np.asarray(res.x, dtype=np.float64)[np.cumsum(widths) - widths]
    n_tar_blocks = np.rint(means * widths).astype(np.int64)  # genuine per block
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
