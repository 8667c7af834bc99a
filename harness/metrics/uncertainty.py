"""Confidence intervals for verification metrics: bootstrap and binomial.

Pure numpy / scipy.  Three kinds of interval:

* **Bootstrap** (:func:`verification_intervals`, :func:`bootstrap`):
  percentile or BCa (Efron and Tibshirani 1993, ch. 13-14; the BCa
  acceleration from the jackknife exactly as ``scipy.stats.bootstrap``),
  seeded, ``B = 1000`` replicates by default, with a stated resampling
  **unit**:

  - ``"pairs"``: pairs are drawn with replacement *within each stratum*
    (genuine and impostor separately, and within each fold when folds are
    given), so every replicate keeps the class and fold sizes.  Right when
    pairs are independent; it ignores that pairs sharing a person are
    correlated and then under-covers.
  - ``"subjects"``: identities are drawn with replacement and carry their
    pairs with them -- the "subsets bootstrap" of Bolle, Ratha and Pankanti
    (*Error analysis of pattern recognition systems -- the subsets
    bootstrap*, CVIU 93, 2004).  A pair belongs to **both** its subjects:
    if subject ``a`` is drawn ``c_a`` times, a genuine pair of ``a`` gets
    weight ``c_a`` and an impostor pair ``(a, b)`` weight ``c_a * c_b``
    (kept only when both subjects were drawn, counted with multiplicity).
    This is Owen's *pigeonhole bootstrap* for crossed data (Ann. Appl.
    Stat. 1, 2007; Owen and Eckles, Ann. Appl. Stat. 6, 2012), which is
    mean-consistent and mildly conservative; Schuckers' two-instance
    bootstrap for FMR (*Computational Methods in Biometric
    Authentication*, 2010) uses the same rule.  Li et al. (*Second-level
    partition for estimating FAR confidence intervals*, 2009) show that
    subsets formed from one subject only under-cover FAR, which is why
    the owner-only alternative is not used.

  Replicates are **vectorised**: a design turns B draws into a (B, pairs)
  weight matrix (``rng.integers`` + ``np.bincount``), and every statistic
  is computed for a block of replicates at once from weighted cumulative
  counts over the scores sorted once.  A replicate equals the metric
  evaluated on the materialised resample (``np.repeat(scores, weights)``),
  threshold re-selection of the k-fold accuracy included.

* **Exact binomial** (:func:`clopper_pearson`) and **Wilson**
  (:func:`wilson`) intervals for an error rate counted at a fixed threshold,
  and the **rule of three** (:func:`rule_of_three`; Hanley and
  Lippman-Hand, JAMA 249, 1983): with 0 errors in n trials the one-sided
  95 % upper bound is about 3/n.  They assume independent trials.

* :func:`attach_intervals` fills the ``ci`` of the headline metrics of a
  :func:`~harness.metrics.report.verification_summary` (accuracy,
  ``tar_at_far_*``, ``eer``, ``auc``, ``far_at_eer_threshold``,
  ``frr_at_eer_threshold``): ``ci = [low, high]`` (the schema's pair, which
  reports render) and ``meta["ci"] = {low, high, level, method, unit, B,
  seed}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from harness.metrics._checks import MetricInputError, check_pair, check_rate

__all__ = [
    "DEFAULT_B",
    "Design",
    "Interval",
    "METHODS",
    "UNITS",
    "attach_intervals",
    "bca_interval",
    "bootstrap",
    "clopper_pearson",
    "error_rate_interval",
    "mated_components",
    "mean_intervals",
    "pair_design",
    "percentile_interval",
    "rule_of_three",
    "subject_design",
    "verification_intervals",
    "wilson",
]

DEFAULT_B = 1000
UNITS = ("pairs", "subjects")
METHODS = ("percentile", "bca")
BINOMIAL_METHODS = ("clopper-pearson", "wilson")
#: Jackknife groups per stratum for BCa; more units are split into this many groups.
JACKKNIFE_GROUPS = 1000
#: Elements of one (replicates, pairs) weight block; bounds memory (~32 MB of int64).
BLOCK = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A confidence interval and how it was made.

    :param unit: the resampling unit (``pairs`` / ``subjects``), or
        ``trials`` for a binomial interval.
    :param B: bootstrap replicates asked for (None for binomial intervals).
    :param extra: e.g. ``invalid`` (replicates where the metric was
        undefined and that were left out), ``rule_of_3``.
    """

    low: float
    high: float
    level: float
    method: str
    unit: str
    B: int | None = None
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"low": float(self.low), "high": float(self.high), "level": self.level, "method": self.method,
             "unit": self.unit, "B": self.B, "seed": self.seed}
        d.update(self.extra)
        return d


def _check_level(level: float) -> float:
    try:
        v = float(level)
    except (TypeError, ValueError):
        raise MetricInputError(f"level: {level!r} is not a number; expected e.g. 0.95") from None
    if not 0.0 < v < 1.0:
        raise MetricInputError(f"level: {level!r} is outside (0, 1); expected e.g. 0.95")
    return v


# -- binomial intervals ------------------------------------------------------
def _check_counts(k: int, n: int) -> tuple[int, int]:
    if int(n) != n or n < 1:
        raise MetricInputError(f"n: {n!r}; expected a whole number of trials >= 1")
    if int(k) != k or not 0 <= k <= n:
        raise MetricInputError(f"k: {k!r}; expected a whole number of errors in [0, n={n}]")
    return int(k), int(n)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) interval for a proportion k/n:
    ``Beta(a/2; k, n-k+1)`` to ``Beta(1-a/2; k+1, n-k)``, 0 / 1 at the ends."""
    from scipy.stats import beta

    k, n = _check_counts(k, n)
    a = 1.0 - _check_level(level)
    low = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return low, high


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval, no continuity correction:
    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``."""
    from scipy.special import ndtri

    k, n = _check_counts(k, n)
    z = float(ndtri(0.5 + _check_level(level) / 2))
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def rule_of_three(n: int, level: float = 0.95) -> float:
    """One-sided upper bound on a rate when 0 errors were seen in ``n``
    independent trials: ``-ln(1 - level) / n`` (2.996/n ~ 3/n at 95 %),
    the large-n form of the exact ``1 - (1 - level)**(1/n)``."""
    _, n = _check_counts(0, n)
    return -math.log(1.0 - _check_level(level)) / n


def error_rate_interval(k: int, n: int, level: float = 0.95, method: str = "clopper-pearson") -> Interval:
    """Binomial interval for ``k`` errors in ``n`` trials (unit ``trials``);
    with ``k == 0`` the rule-of-three bound is added as ``rule_of_3``."""
    if method not in BINOMIAL_METHODS:
        raise MetricInputError(f"method: {method!r} is not one of {', '.join(BINOMIAL_METHODS)}")
    low, high = (clopper_pearson if method == "clopper-pearson" else wilson)(k, n, level)
    extra: dict[str, Any] = {"errors": int(k), "n": int(n)}
    if k == 0:
        extra["rule_of_3"] = rule_of_three(n, level)
    return Interval(low, high, float(level), method, "trials", None, None, extra)


# -- resampling designs -------------------------------------------------------
@dataclass(frozen=True)
class Design:
    """How bootstrap replicates reweight pairs.

    Units (pairs or subjects) are drawn with replacement within each
    stratum; pair ``i`` gets weight ``c[unit_a[i]] * c[unit_b[i]]``, where
    ``unit_b[i] == n_units`` (a pair with one subject, e.g. genuine) stands
    for a count of 1.

    Weights are int32 (a product of two counts stays far below 2**31);
    everything summed from them is accumulated in int64.

    :param unit: ``"pairs"`` or ``"subjects"``.
    :param unit_a, unit_b: (pairs,) unit index of each pair's subjects
        (``unit_b``: ``n_units`` when the pair has one).
    :param stratum: (units,) stratum of each unit.
    :param direct: unit ``i`` is pair ``i`` (a pair design): the counts
        are the weights.
    """

    unit: str
    unit_a: np.ndarray
    unit_b: np.ndarray
    stratum: np.ndarray
    direct: bool = False

    @property
    def n_pairs(self) -> int:
        return int(self.unit_a.size)

    @property
    def n_units(self) -> int:
        return int(self.stratum.size)

    def take(self, idx: np.ndarray) -> "Design":
        """The same design with its pairs reordered / selected by ``idx``.
        A pair design is renumbered so unit ``i`` stays pair ``i`` (its
        units are exchangeable within a stratum: the same distribution, and
        no random-access gather of the counts)."""
        if self.direct:
            new = np.arange(np.asarray(idx).size)
            return Design(self.unit, new, new, self.stratum[self.unit_a[idx]], True)
        return Design(self.unit, self.unit_a[idx], self.unit_b[idx], self.stratum)

    def _pair_weights(self, c: np.ndarray) -> np.ndarray:
        c = c.astype(np.int32, copy=False)
        if self.direct:
            return c
        w = np.take(c, self.unit_a, axis=1)
        ones = np.ones((c.shape[0], 1), dtype=np.int32)
        w *= np.take(np.concatenate([c, ones], axis=1), self.unit_b, axis=1)
        return w

    def weights(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, pairs) int32 weights of ``size`` replicates."""
        strata = np.unique(self.stratum)
        c = None if strata.size == 1 else np.empty((size, self.n_units), dtype=np.int32)
        for s in strata:
            members = np.flatnonzero(self.stratum == s)
            m = members.size
            draws = rng.integers(0, m, (size, m))
            draws += (np.arange(size) * m)[:, None]
            counts = np.bincount(draws.ravel(), minlength=size * m).reshape(size, m)
            if c is None:
                c = counts
            else:
                c[:, members] = counts
        return self._pair_weights(c)

    def jackknife_groups(self, max_groups: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(group_of_unit, stratum_of_group)``: leave-one-unit-out within
        each stratum, or, for a stratum with more than ``max_groups`` units,
        leave-one-group-out over ``max_groups`` seeded random groups."""
        group = np.empty(self.n_units, dtype=np.int64)
        g_stratum = []
        start = 0
        for s in np.unique(self.stratum):
            members = np.flatnonzero(self.stratum == s)
            g = min(members.size, max_groups)
            ids = np.arange(members.size) % g
            if g < members.size:
                ids = rng.permutation(ids)
            group[members] = start + ids
            g_stratum.extend([s] * g)
            start += g
        return group, np.asarray(g_stratum)

    def jackknife_weights(self, group: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """(rows, pairs) 0/1 weights leaving out the groups ``rows``."""
        return self._pair_weights(group[None, :] != rows[:, None])


def _codes(values: object) -> np.ndarray:
    """A 1-D array of unit names: numbers stay numbers, anything else is text."""
    a = np.asarray(values).reshape(-1)
    return a if a.dtype.kind in "biu" else a.astype(str)


def pair_design(n: int, strata: object = None) -> Design:
    """Each pair is a unit, drawn within its stratum (e.g. label, or
    ``(fold, label)``); ``strata=None`` is one stratum."""
    if n < 1:
        raise MetricInputError(f"n: {n}; a bootstrap needs at least one pair")
    if strata is None:
        st = np.zeros(n, dtype=np.int64)
    else:
        st = np.unique(_codes(strata), return_inverse=True)[1].reshape(-1)
        if st.size != n:
            raise MetricInputError(f"strata: {st.size} entries for {n} pairs; expected one per pair")
    idx = np.arange(n)
    return Design("pairs", idx, idx, st, True)


def subject_design(subject_a: object, subject_b: object = None) -> Design:
    """Subjects are the units (one stratum).  ``subject_b`` is the second
    subject of each pair (equal to ``subject_a`` for a genuine pair); give
    ``subject_a`` alone when each pair belongs to one subject."""
    a = _codes(subject_a)
    b = a if subject_b is None else _codes(subject_b)
    if a.size != b.size:
        raise MetricInputError(f"subject_a and subject_b differ in length ({a.size} vs {b.size})")
    if a.size == 0:
        raise MetricInputError("subject_a: is empty; a bootstrap needs at least one pair")
    if a.dtype.kind != b.dtype.kind:
        a, b = a.astype(str), b.astype(str)
    names, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    inv = inv.reshape(-1)
    ua, ub = inv[: a.size], inv[a.size:]
    ub = np.where(ua == ub, names.size, ub)  # one subject: a count of 1
    return Design("subjects", ua, ub, np.zeros(names.size, dtype=np.int64))


# -- interval rules ----------------------------------------------------------
def _finite(replicates: object) -> tuple[np.ndarray, int]:
    r = np.asarray(replicates, dtype=np.float64).reshape(-1)
    ok = np.isfinite(r)
    return r[ok], int(r.size - ok.sum())


def percentile_interval(replicates: object, level: float = 0.95) -> tuple[float, float]:
    """Efron's percentile interval: the ``(1-level)/2`` and ``(1+level)/2``
    quantiles of the replicates (linear interpolation, as
    ``scipy.stats.bootstrap``); non-finite replicates are left out."""
    r, _ = _finite(replicates)
    if r.size == 0:
        raise MetricInputError("replicates: none is finite; the metric is undefined in every resample")
    a = (1.0 - _check_level(level)) / 2
    lo, hi = np.percentile(r, [100 * a, 100 * (1 - a)])
    return float(lo), float(hi)


def bca_interval(replicates: object, estimate: float, jackknife: Sequence[object],
                 level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected and accelerated interval (Efron 1987).

    ``z0 = Φ⁻¹(share of replicates below the estimate, ties counting ½)``;
    the acceleration ``a`` comes from the jackknife values, one array per
    stratum, combined as ``scipy.stats.bootstrap`` combines samples:
    ``U = (n-1)(mean - θ_(i))``, ``a = Σ_s ΣU³/n_s³ / (6 (Σ_s ΣU²/n_s²)^1.5)``.
    The interval is the ``Φ(z0 + (z0+z)/(1-a(z0+z)))`` quantiles for
    ``z = Φ⁻¹((1∓level)/2)``.  Falls back to :func:`percentile_interval`
    when ``z0`` or ``a`` is not finite (all replicates on one side).
    """
    from scipy.special import ndtr, ndtri

    r, _ = _finite(replicates)
    if r.size == 0:
        raise MetricInputError("replicates: none is finite; the metric is undefined in every resample")
    alpha = (1.0 - _check_level(level)) / 2
    z0 = float(ndtri((np.count_nonzero(r < estimate) + np.count_nonzero(r <= estimate)) / (2.0 * r.size)))
    num = den = 0.0
    for jk in jackknife:
        j, _ = _finite(jk)
        if j.size < 2:
            continue
        n = float(j.size)
        u = (n - 1) * (j.mean() - j)
        num += float(np.sum(u ** 3)) / n ** 3
        den += float(np.sum(u ** 2)) / n ** 2
    a = num / (6.0 * den ** 1.5) if den > 0 else 0.0
    if not (math.isfinite(z0) and math.isfinite(a)):
        return percentile_interval(r, level)
    za = float(ndtri(alpha))
    q = []
    for z in (za, -za):
        q.append(float(ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))))
    lo, hi = np.percentile(r, [100 * q[0], 100 * q[1]])
    return float(lo), float(hi)


# -- the bootstrap engine ---------------------------------------------------
Statistic = Callable[[np.ndarray], Mapping[str, np.ndarray]]


def _check_run(B: int, method: str, level: float) -> float:
    if int(B) != B or B < 1:
        raise MetricInputError(f"B: {B!r}; expected a whole number of replicates >= 1 (default {DEFAULT_B})")
    if method not in METHODS:
        raise MetricInputError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    return _check_level(level)


def _blocks(total: int, n_pairs: int) -> Iterable[int]:
    step = max(1, BLOCK // max(n_pairs, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _jackknife(statistic: Statistic, design: Design, seed: int, keys: list[str]) -> dict[str, list]:
    """Leave-one-unit (or group) -out values of each statistic, one array per stratum."""
    group, g_stratum = design.jackknife_groups(JACKKNIFE_GROUPS, np.random.default_rng([seed, 1]))
    vals: dict[str, list] = {k: [] for k in keys}
    start = 0
    for size in _blocks(g_stratum.size, design.n_pairs):
        for k, v in statistic(design.jackknife_weights(group, np.arange(start, start + size))).items():
            vals[k].append(v)
        start += size
    out = {}
    for k, v in vals.items():
        allv = np.concatenate(v)
        out[k] = [allv[g_stratum == s] for s in np.unique(g_stratum)]
    return out


def _run(statistic: Statistic, design: Design, B: int, seed: int, level: float,
         method: str) -> dict[str, Interval]:
    """Intervals of every statistic ``statistic`` returns, from one set of draws."""
    level = _check_run(B, method, level)
    rng = np.random.default_rng(seed)
    ones = np.ones((1, design.n_pairs), dtype=np.int64)
    estimate = {k: float(v[0]) for k, v in statistic(ones).items()}
    reps: dict[str, list] = {k: [] for k in estimate}
    for size in _blocks(B, design.n_pairs):
        for k, v in statistic(design.weights(rng, size)).items():
            reps[k].append(v)
    jack = _jackknife(statistic, design, seed, list(estimate)) if method == "bca" else {}
    out = {}
    for k, est in estimate.items():
        r = np.concatenate(reps[k])
        if not math.isfinite(est):
            continue
        finite, invalid = _finite(r)
        if finite.size == 0:
            continue
        if method == "bca":
            lo, hi = bca_interval(finite, est, jack[k], level)
        else:
            lo, hi = percentile_interval(finite, level)
        extra = {"invalid": invalid} if invalid else {}
        out[k] = Interval(lo, hi, level, method, design.unit, int(B), int(seed), extra)
    return out


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], design: Design, *, B: int = DEFAULT_B,
              seed: int = 0, level: float = 0.95, method: str = "percentile") -> Interval:
    """Interval of one vectorised statistic: ``statistic(W)`` maps a
    (replicates, pairs) weight matrix to (replicates,) values; with
    all-ones weights it must give the estimate.  Example, the mean::

        bootstrap(lambda w: w @ x / w.sum(1), pair_design(x.size))

    With one stratum and ``method`` / ``B`` / a seeded generator equal,
    the replicates are those of ``scipy.stats.bootstrap`` (same index draws).
    """
    res = _run(lambda w: {"v": np.asarray(statistic(w), dtype=np.float64)}, design, B, seed, level, method)
    if "v" not in res:
        raise MetricInputError("statistic: undefined (not finite) on the data or in every resample")
    return res["v"]


class _Sorted:
    """Scores sorted once (ascending) with their tie groups."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray) -> None:
        self.values = scores
        self.is_gen = labels
        change = np.empty(scores.size, dtype=bool)
        change[0] = True
        np.not_equal(scores[1:], scores[:-1], out=change[1:])
        self.starts = np.flatnonzero(change)
        self.ties = self.starts.size < scores.size

    def class_weights(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Genuine and impostor weight per distinct score (ascending)."""
        wg = w * self.is_gen
        wi = w - wg
        if self.ties:
            wg = np.add.reduceat(wg, self.starts, axis=1)
            wi = np.add.reduceat(wi, self.starts, axis=1)
        return wg, wi


def _starts(v: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, v[1:] != v[:-1]])


def _first(n_rows: int, n_cols: int, pred: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per row, the first column where the monotone (False..., True...)
    ``pred(column index per row)`` holds (``n_cols`` if none): a bisection
    run on all rows at once, ``log2(n_cols)`` steps of ``n_rows`` lookups."""
    lo = np.zeros(n_rows, dtype=np.int64)
    hi = np.full(n_rows, n_cols, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = np.minimum((lo + hi) // 2, n_cols - 1)
        p = pred(mid)
        hi = np.where(active & p, mid, hi)
        lo = np.where(active & ~p, mid + 1, lo)


def _acc_dtype(w: np.ndarray) -> type:
    """int32 for running sums of ``w`` when they cannot overflow (the fast
    path: no casting inside ``cumsum``), else int64."""
    return np.int32 if w.shape[1] * int(w.max(initial=0)) < 2**31 - 1 else np.int64


def _roc_stats(wg: np.ndarray, wi: np.ndarray, far_targets: Sequence[float], acc: type) -> dict[str, np.ndarray]:
    """TAR@FAR (strict), interpolated EER and AUC per row, exactly as
    :class:`~harness.metrics.verification.Roc` computes them on the
    materialised resample.  ``wg`` / ``wi``: (c, K) genuine / impostor
    weight per distinct score, ascending."""
    c, k = wg.shape
    gd, idd = wg[:, ::-1], wi[:, ::-1]  # descending thresholds
    tp = np.zeros((c, k + 1), dtype=acc)  # accepted weight from +inf down
    fp = np.zeros((c, k + 1), dtype=acc)
    np.cumsum(gd, axis=1, dtype=acc, out=tp[:, 1:])
    np.cumsum(idd, axis=1, dtype=acc, out=fp[:, 1:])
    rows = np.arange(c)
    ng = tp[:, -1].astype(np.float64)
    ni = fp[:, -1].astype(np.float64)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in far_targets:
            # the largest false-accept count f with f / ni <= t, in Roc's float arithmetic
            fmax = np.floor(t * ni)
            fmax = np.where((fmax + 1) / ni <= t, fmax + 1, fmax)
            fmax = np.where(fmax / ni > t, fmax - 1, fmax)
            j = _first(c, k + 1, lambda m: fp[rows, m] > fmax) - 1
            out[f"tar_at_far:{t!r}"] = tp[rows, np.maximum(j, 0)] / ng

        def g(m: np.ndarray) -> np.ndarray:  # tar + far - 1, nondecreasing along a row
            return tp[rows, m] / ng + fp[rows, m] / ni - 1.0

        i = np.clip(_first(c, k + 1, lambda m: g(m) >= 0), 1, k)
        g0, g1 = g(i - 1), g(i)
        lam = np.where(g1 == g0, 0.0, -g0 / (g1 - g0))
        f0, f1 = fp[rows, i - 1] / ni, fp[rows, i] / ni
        out["eer"] = f0 + lam * (f1 - f0)
        # trapezoids: sum_k dfp_k (tp_k + tp_{k-1}) with tp_k = tp_{k-1} + wg_k
        area2 = (2 * np.einsum("ij,ij->i", idd, tp[:, :-1], dtype=np.int64)
                 + np.einsum("ij,ij->i", idd, gd, dtype=np.int64))
        out["auc"] = area2 / (2.0 * ng * ni)
        bad = (ng == 0) | (ni == 0)
        if bad.any():
            for v in out.values():
                v[bad] = np.nan
    return out


class _Fold:
    """One k-fold split, precomputed for weighted threshold selection."""

    def __init__(self, data: _Sorted, train: np.ndarray, test: np.ndarray) -> None:
        self.train, self.test = train, test
        v = data.values[train]
        self.starts = _starts(v)
        self.u = v[self.starts]
        self.sign = np.where(data.is_gen[train], 1, -1).astype(np.int32)
        self.s_test = data.values[test]
        self.gen_test = data.is_gen[test]


def _drawn(wt: np.ndarray, start: np.ndarray, step: int) -> np.ndarray:
    """Per row, the first index from ``start`` on (moving by ``step``) whose
    weight is positive; -1 or ``m`` past the ends.  Runs of undrawn scores
    are short, so this loops a few times over the rows still looking."""
    rows = np.arange(wt.shape[0])
    m = wt.shape[1]
    pos = np.asarray(start, dtype=np.int64).copy()
    todo = (pos >= 0) & (pos < m)
    todo[todo] = wt[rows[todo], pos[todo]] == 0
    while todo.any():
        pos[todo] += step
        todo &= (pos >= 0) & (pos < m)
        r = rows[todo]
        todo[r] = wt[r, pos[r]] == 0
    return pos


def _fold_accuracy(fold: _Fold, w: np.ndarray, tie: str, acc: type) -> np.ndarray:
    """Accuracy on the test fold with the threshold re-chosen on the
    weighted training folds -- :func:`~harness.metrics.lfw.kfold_accuracy_from_scores`
    on the materialised resample: candidates are the smallest drawn score,
    midpoints between consecutive *drawn* distinct scores and just above
    the largest.

    Slot ``j`` (0..m) is a threshold between ``u[j-1]`` and ``u[j]``; its
    correct count is ``I + S[m-j]`` with ``S[k]`` the signed weight
    (genuine +1, impostor -1) of the top ``k`` distinct scores, kept in
    descending order so that the first best (``argmax``, on a contiguous
    array) is the highest threshold.  An undrawn ``u[l]`` repeats the
    count of slot ``l+1``, so the best slots found over all slots map to
    drawn ones by a short scan over the undrawn run (:func:`_drawn`).
    """
    c = w.shape[0]
    wt = w[:, fold.train]
    d = wt * fold.sign
    if fold.starts.size < wt.shape[1]:
        d = np.add.reduceat(d, fold.starts, axis=1)
        wt = np.add.reduceat(wt, fold.starts, axis=1)
    m = fold.u.size
    top = np.zeros((c, m + 1), dtype=acc)  # top[:, k]: slot m - k
    np.cumsum(d[:, ::-1], axis=1, dtype=acc, out=top[:, 1:])
    if tie == "highest":  # the highest best slot is always a drawn one (or m)
        j = m - np.argmax(top, axis=1)
    elif tie == "lowest":  # the lowest best slot, moved up to the drawn index it stands for
        j = _drawn(wt, np.argmax(top[:, ::-1], axis=1), +1)  # top reversed: slots ascending
    else:
        best = (top == top.max(axis=1, keepdims=True))[:, ::-1]  # ascending slots
        best[:, :m] &= wt > 0
        want = (np.count_nonzero(best, axis=1) - 1) // 2
        j = np.argmax(np.cumsum(best, axis=1) > want[:, None], axis=1)
    prev = _drawn(wt, j - 1, -1)  # last drawn index below slot j (-1: none)
    last = _drawn(wt, np.full(c, m - 1), -1)
    u = fold.u
    a = u[np.maximum(prev, 0)]
    b = u[np.minimum(j, m - 1)]
    mid = a + (b - a) / 2.0
    mid = np.where(mid <= a, b, mid)
    t = np.where(prev < 0, b, mid)
    t = np.where(j == m, np.nextafter(u[np.maximum(last, 0)], np.inf), t)
    we = w[:, fold.test]
    right = (fold.s_test[None, :] >= t[:, None]) == fold.gen_test[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.einsum("ij,ij->i", we, right, dtype=np.int64) / we.sum(axis=1)
    share[last < 0] = np.nan
    return share


def _verification_statistic(data: _Sorted, far_targets: Sequence[float], thresholds: Mapping[str, float],
                            folds: Sequence[_Fold], tie: str) -> Statistic:
    """One function computing every verification statistic for a weight block."""
    pos = {k: int(np.searchsorted(data.values, t, side="left")) for k, t in thresholds.items()}

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        acc = _acc_dtype(w)
        wg, wi = data.class_weights(w)
        out = _roc_stats(wg, wi, far_targets, acc)
        if thresholds:
            gen_w = w * data.is_gen
            ng, ni = gen_w.sum(axis=1), w.sum(axis=1) - gen_w.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                for k, p in pos.items():
                    g_acc = gen_w[:, p:].sum(axis=1)
                    out[f"far:{k}"] = (w[:, p:].sum(axis=1) - g_acc) / ni
                    out[f"frr:{k}"] = (ng - g_acc) / ng
        if folds:
            out["accuracy"] = np.mean(np.stack([_fold_accuracy(f, w, tie, acc) for f in folds], axis=1), axis=1)
        return out

    return stat


def _design_for(n: int, labels: np.ndarray, folds: np.ndarray | None, unit: str,
                subject_a: object, subject_b: object) -> Design:
    if unit not in UNITS:
        raise MetricInputError(f"unit: {unit!r} is not one of {', '.join(UNITS)}")
    if unit == "pairs":
        strata = labels.astype(np.int64) if folds is None else folds.astype(np.int64) * 2 + labels
        return pair_design(n, strata)
    if subject_a is None:
        raise MetricInputError(f"unit: {unit!r} needs subject_a (and subject_b for pairs of two units); "
                               "give the identities of each pair or use unit='pairs'")
    d = subject_design(subject_a, subject_b)
    if d.n_pairs != n:
        raise MetricInputError(f"subject_a: {d.n_pairs} entries for {n} scores; expected one per pair")
    return d


def verification_intervals(
    scores: object,
    labels: object,
    *,
    folds: object = None,
    subject_a: object = None,
    subject_b: object = None,
    unit: str = "pairs",
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
    method: str = "percentile",
    far_targets: Sequence[float] = (),
    thresholds: Mapping[str, float] | None = None,
    tie: str = "highest",
) -> dict[str, Interval]:
    """Bootstrap intervals of verification metrics, all from one set of draws.

    Keys of the result: ``eer``, ``auc``, ``tar_at_far:<target>`` (strict
    rule), ``far:<name>`` / ``frr:<name>`` for each named threshold in
    ``thresholds`` (the threshold held fixed) and, with ``folds``,
    ``accuracy`` (k-fold, the threshold re-chosen in every replicate with
    the ``tie`` rule).  A metric undefined on the data is left out;
    replicates where it is undefined (a class or a fold drawn empty) are
    dropped and counted as ``invalid``.

    :param unit: ``"pairs"`` (drawn within label and fold) or
        ``"subjects"`` (needs ``subject_a``; ``subject_b`` for pairs of two
        people -- see the module docstring for the weighting rule).
    """
    s, y = check_pair(scores, labels)
    if tie not in ("highest", "lowest", "middle"):
        raise MetricInputError(f"tie: {tie!r} is not one of highest, lowest, middle")
    targets = [check_rate(t, "far_targets") for t in far_targets]
    f = None
    if folds is not None:
        f = np.unique(np.asarray(folds).reshape(-1), return_inverse=True)[1].reshape(-1)
        if f.size != s.size:
            raise MetricInputError(f"folds: {f.size} entries for {s.size} scores; expected one per pair")
        if f.max() < 1:
            raise MetricInputError("folds: 1 distinct fold id; expected at least 2")
    design = _design_for(s.size, y, f, unit, subject_a, subject_b)
    order = np.argsort(s, kind="stable")
    data = _Sorted(s[order], y[order])
    kfolds = []
    if f is not None:
        fs = f[order]
        kfolds = [_Fold(data, np.flatnonzero(fs != k), np.flatnonzero(fs == k)) for k in range(int(f.max()) + 1)]
    stat = _verification_statistic(data, targets, dict(thresholds or {}), kfolds, tie)
    return _run(stat, design.take(order), B, seed, level, method)


# -- attaching intervals to a summary ---------------------------------------
_BOOT_NAMES = {"accuracy", "eer", "auc"}
_RATE_AT_THRESHOLD = {"far_at_eer_threshold": "far", "frr_at_eer_threshold": "frr"}


def _plan(metrics: list[dict]) -> tuple[dict, dict, dict]:
    """The FAR targets, fixed thresholds and statistic key of each headline metric."""
    targets, thresholds, by_name = {}, {}, {}
    for m in metrics:
        name = m.get("name", "")
        meta = m.get("meta") or {}
        if m.get("value") is None:
            continue
        if name.startswith("tar_at_far_") and meta.get("rule", "strict") == "strict":
            t = float(name[len("tar_at_far_"):])
            targets[f"tar_at_far:{t!r}"] = t
            by_name[name] = f"tar_at_far:{t!r}"
        elif name in _BOOT_NAMES:
            by_name[name] = name
        elif name in _RATE_AT_THRESHOLD and meta.get("threshold") is not None:
            thresholds[name] = float(meta["threshold"])
            by_name[name] = f"{_RATE_AT_THRESHOLD[name]}:{name}"
    return targets, thresholds, by_name


def set_interval(m: dict, iv: Interval | None) -> None:
    """Store ``iv`` on the metric record ``m``: ``ci = [low, high]`` and ``meta["ci"]``."""
    if iv is None:
        return
    m["ci"] = [float(iv.low), float(iv.high)]
    m["meta"] = dict(m.get("meta") or {}, ci=iv.to_dict())


def attach_intervals(metrics: list[dict], scores: object, labels: object, **options: Any) -> list[dict]:
    """Fill ``ci`` (``[low, high]``) and ``meta["ci"]`` ({low, high, level,
    method, unit, B, seed}) of the headline metrics in ``metrics`` (the
    ``to_dict()`` records of :func:`~harness.metrics.report.verification_summary`),
    in place; returns ``metrics``.

    ``accuracy``, ``eer``, ``auc`` and defined strict ``tar_at_far_*``:
    bootstrap with ``unit`` / ``method``.  ``far_at_eer_threshold`` /
    ``frr_at_eer_threshold`` (an error rate at a threshold held fixed):
    the ``binomial`` interval (exact Clopper-Pearson by default; with 0
    errors the rule-of-three bound is added) when ``unit="pairs"``, since
    it then assumes independent trials as the pair bootstrap does; the
    subject bootstrap otherwise.  A TAR@FAR under the ``nearest`` rule gets
    no interval (the vectorised bootstrap implements the strict rule).
    ``options``: the keywords of :func:`verification_cis` (folds, subjects, unit, B,
    seed, level, method, binomial, tie, band_far).
    """
    verification_cis(metrics, scores, labels, **options)
    return metrics


def verification_cis(
    metrics: list[dict],
    scores: object,
    labels: object,
    *,
    folds: object = None,
    subject_a: object = None,
    subject_b: object = None,
    unit: str = "pairs",
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
    method: str = "percentile",
    binomial: str = "clopper-pearson",
    tie: str = "highest",
    band_far: Sequence[float] = (),
) -> dict[str, Any] | None:
    """:func:`attach_intervals`, returning the pointwise ROC band: with
    ``band_far`` (FAR values), the strict TAR at each of them is bootstrapped
    from the same draws and ``{"far", "tar_low", "tar_high", "level",
    "method", "unit", "B", "seed"}`` is returned (the DET band is
    ``1 - tar``); FAR values below ``1 / N_impostor`` are left out.  None
    without ``band_far``."""
    s, y = check_pair(scores, labels)
    targets, thresholds, by_name = _plan(metrics)
    if folds is None:
        by_name.pop("accuracy", None)
    n_imp = int((~y).sum())
    band = [float(t) for t in band_far if n_imp and float(t) * n_imp >= 1 - 1e-9 and 0 < float(t) <= 1]
    all_targets = list(dict.fromkeys([*targets.values(), *band]))
    intervals = verification_intervals(
        s, y, folds=folds, subject_a=subject_a, subject_b=subject_b, unit=unit, B=B, seed=seed, level=level,
        method=method, far_targets=all_targets, thresholds={} if unit == "pairs" else thresholds, tie=tie)
    if unit == "pairs":
        for name, t in thresholds.items():
            kind = _RATE_AT_THRESHOLD[name]
            cls = ~y if kind == "far" else y
            err = (s[cls] >= t) if kind == "far" else (s[cls] < t)
            intervals[by_name[name]] = error_rate_interval(int(err.sum()), int(cls.sum()), level, binomial)
    for m in metrics:
        key = by_name.get(m.get("name", ""))
        set_interval(m, intervals.get(key) if key else None)
    if not band:
        return None
    keep = [t for t in band if f"tar_at_far:{t!r}" in intervals]
    ivs = [intervals[f"tar_at_far:{t!r}"] for t in keep]
    return {"far": keep, "tar_low": [iv.low for iv in ivs], "tar_high": [iv.high for iv in ivs],
            "level": float(level), "method": method, "unit": unit, "B": int(B), "seed": int(seed)}


def band_grid(n_impostor: int, points: int = 25, floor: float = 1e-6) -> list[float]:
    """Log-spaced FAR values from ``max(1 / n_impostor, floor)`` to 1 for a ROC band."""
    if n_impostor < 1:
        return []
    lo = max(1.0 / n_impostor, floor)
    return [float(v) for v in np.unique(np.logspace(math.log10(lo), 0.0, points))]


def mated_components(first: object, second: object, labels: object) -> np.ndarray:
    """A subject id for each unit named in ``first`` / ``second`` when the subjects themselves are
    unknown (an IJB 1:1 release without its 1:N files): the connected components of the graph of
    **mated** pairs.  Two templates of one person that were ever compared are in one component;
    two that never were share no pair, so treating them as two subjects changes no pair's
    weight in the subject bootstrap.  Returns the component of each pair's first and second
    unit as a (2, pairs) int array."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = _codes(first), _codes(second)
    y = np.asarray(labels).reshape(-1).astype(bool)
    if not (a.size == b.size == y.size) or a.size == 0:
        raise MetricInputError(f"first / second / labels: {a.size}, {b.size}, {y.size} entries; expected one "
                               "per pair, at least one")
    if a.dtype.kind != b.dtype.kind:
        a, b = a.astype(str), b.astype(str)
    names, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    inv = inv.reshape(-1)
    ia, ib = inv[: a.size], inv[a.size:]
    graph = coo_matrix((np.ones(int(y.sum())), (ia[y], ib[y])), shape=(names.size, names.size))
    _, comp = connected_components(graph, directed=False)
    return np.stack([comp[ia], comp[ib]])


# -- means of per-pair quantities (image quality) ------------------------------
def mean_intervals(
    values: Mapping[str, object],
    *,
    subject_a: object = None,
    subject_b: object = None,
    unit: str = "pairs",
    strata: object = None,
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
    method: str = "percentile",
) -> dict[str, Interval]:
    """Bootstrap intervals of the mean of per-pair quantities (e.g. the PSNR of each pair's
    restored face), all from one set of draws.

    :param values: name -> (pairs,) values, one per pair, all the same length.
    :param unit: ``pairs`` (drawn within ``strata``; None: one stratum) -- or any other name
        of an independent unit, e.g. ``faces`` -- or ``subjects`` (needs ``subject_a``; a pair
        of two people weighs the product of their counts, as in :func:`verification_intervals`).
        A replicate is the weighted mean
        ``sum(w x) / sum(w)``: the mean of the materialised resample.  A quantity that is not
        finite on the data (e.g. an infinite PSNR) gets no interval.
    """
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in values.items()}
    if not arrays:
        raise MetricInputError("values: none given; expected name -> one value per pair")
    n = {a.size for a in arrays.values()}
    if len(n) != 1 or 0 in n:
        raise MetricInputError(f"values: lengths {sorted(n)}; expected one value per pair, the same pairs for each")
    size = n.pop()
    if unit == "subjects":
        design = _design_for(size, np.zeros(size, dtype=np.int64), None, unit, subject_a, subject_b)
    else:
        d = pair_design(size, strata)
        design = Design(str(unit), d.unit_a, d.unit_b, d.stratum, True)
    keys = list(arrays)
    x = np.stack([arrays[k] for k in keys], axis=1)  # (pairs, quantities)
    ok = np.isfinite(x).all(axis=0)
    x = np.where(np.isfinite(x), x, 0.0)

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        wf = w.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = (wf @ x) / wf.sum(axis=1)[:, None]
        return {k: (means[:, i] if ok[i] else np.full(w.shape[0], np.nan)) for i, k in enumerate(keys)}

    return _run(stat, design, B, seed, level, method)


# -- liveness: binomial intervals at the fixed threshold ----------------------
def liveness_intervals(
    scores: object,
    labels: object,
    threshold: float,
    species: object = None,
    *,
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
    method: str = "percentile",
    binomial: str = "clopper-pearson",
) -> dict[str, Interval]:
    """Intervals of the ISO/IEC 30107-3 rates at a threshold held fixed
    (labels: 1 = bona fide; a presentation is accepted when ``score >=
    threshold``).

    * ``bpcer``: ``binomial`` interval of the bona fide rejected;
    * ``apcer``: ``binomial`` interval of the worst species (the species
      whose APCER is reported), with ``species``, ``errors`` and ``n``;
    * ``acer`` and ``hter``: percentile bootstrap over presentations drawn
      within each species and the bona fide (a stratum's resampled error
      count is Binomial(n, k/n), so the draws are exact and vectorised);
    * ``eer`` and ``auc``: :func:`verification_intervals` over presentations
      drawn within their class (unit ``presentations``).
    """
    s, y = check_pair(scores, labels, labels_name="labels (1 = bona fide)")
    level = _check_run(B, method, level)
    sp = np.full(s.size, "attack", dtype=object) if species is None else np.asarray(species, dtype=object)
    if sp.size != s.size:
        raise MetricInputError(f"species: {sp.size} entries for {s.size} scores; expected one per presentation")
    sp = np.where((sp == "") | (sp == None), "attack", sp).astype(str)  # noqa: E711
    accepted = s >= float(threshold)
    bf_err, n_bf = int(np.count_nonzero(~accepted & y)), int(y.sum())
    names = sorted(set(sp[~y].tolist()))
    counts = {k: (int(np.count_nonzero(accepted & ~y & (sp == k))), int(np.count_nonzero(~y & (sp == k))))
              for k in names}
    out: dict[str, Interval] = {}
    if n_bf:
        out["bpcer"] = error_rate_interval(bf_err, n_bf, level, binomial)
    if names:
        worst = max(names, key=lambda k: (counts[k][0] / counts[k][1], k))
        iv = error_rate_interval(*counts[worst], level, binomial)
        out["apcer"] = Interval(iv.low, iv.high, iv.level, iv.method, iv.unit, None, None,
                                {**iv.extra, "species": worst})
    if n_bf and names:
        rng = np.random.default_rng(seed)
        bp = rng.binomial(n_bf, bf_err / n_bf, B) / n_bf
        per = np.stack([rng.binomial(counts[k][1], counts[k][0] / counts[k][1], B) for k in names])
        ap = (per / np.array([counts[k][1] for k in names])[:, None]).max(axis=0)
        pooled = per.sum(axis=0) / sum(counts[k][1] for k in names)
        for key, reps in (("acer", (ap + bp) / 2), ("hter", (pooled + bp) / 2)):
            lo, hi = percentile_interval(reps, level)
            out[key] = Interval(lo, hi, level, "percentile", "presentations", int(B), int(seed))
        roc = verification_intervals(s, y, B=B, seed=seed, level=level, method=method)
        for key in ("eer", "auc"):
            if key in roc:
                iv = roc[key]
                out[key] = Interval(iv.low, iv.high, iv.level, iv.method, "presentations", iv.B, iv.seed, iv.extra)
    return out


def attach_by_name(metrics: list[dict], intervals: Mapping[str, Interval]) -> list[dict]:
    """Set the interval of each metric named in ``intervals`` (in place); returns ``metrics``."""
    for m in metrics:
        if m.get("value") is not None:
            set_interval(m, intervals.get(str(m.get("name", ""))))
    return metrics


# -- identification: bootstrap over probes or subjects ------------------------
def _open_trial(rank: np.ndarray, mate: np.ndarray, top: np.ndarray, candidate_list: int) -> tuple[_Sorted, np.ndarray]:
    """One open-set trial as scored "pairs": a mated search is genuine with its
    mate's score when the mate is within the candidate list (else below every
    score), a non-mated one an impostor with its top score -- the strict
    TAR@FAR of these is the TPIR@FPIR of
    :func:`~harness.metrics.identification.open_set_point`."""
    mated = rank > 0
    hit = mated & (rank <= candidate_list)
    finite = np.concatenate([mate[hit], top[~mated]])
    low = (finite.min() if finite.size else 0.0) - 1.0
    score = np.where(mated, np.where(hit, mate, low), top)
    order = np.argsort(score, kind="stable")
    return _Sorted(score[order], mated[order]), order


def identification_intervals(
    trials: Sequence[tuple[object, object, object, object]],
    *,
    ranks: Sequence[int] = (),
    fpir_targets: Sequence[float] = (),
    candidate_list: int = 1,
    unit: str = "subjects",
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
    method: str = "percentile",
) -> dict[str, Interval]:
    """Intervals of 1:N metrics averaged over trials.

    :param trials: one ``(probe_ids, rank, mate_score, top_score)`` per
        trial (rank 0: a non-mated search), as
        :func:`~harness.tasks.identification.search` gives them.
    :param ranks: closed set: ``rank<k>`` (share of probes whose mate is
        within rank k, mean over trials).
    :param fpir_targets: open set: ``fnir_at_fpir:<t>``,
        ``tpir_at_fpir:<t>`` and ``rank1_hit_at_fpir:<t>`` (mate at rank 1
        with a score at or above the FPIR threshold) with the threshold
        re-chosen on the non-mated searches of every replicate
        (:func:`_open_trial`).
    :param unit: ``subjects`` (a probe identity is drawn with all its
        searches, in every trial at once) or ``probes`` (searches drawn
        within each trial and, in the open set, within mated / non-mated).
    """
    stat, design = identification_statistic(trials, ranks=ranks, fpir_targets=fpir_targets,
                                            candidate_list=candidate_list, unit=unit)
    return _run(stat, design, B, seed, level, method)


def identification_statistic(
    trials: Sequence[tuple[object, object, object, object]],
    *,
    ranks: Sequence[int] = (),
    fpir_targets: Sequence[float] = (),
    candidate_list: int = 1,
    unit: str = "subjects",
) -> tuple[Statistic, Design]:
    """The vectorised statistic and the design of :func:`identification_intervals`:
    ``stat(W)`` on all-ones weights is the estimate; on counts it is the metric of
    the materialised resample."""
    if unit not in ("subjects", "probes"):
        raise MetricInputError(f"unit: {unit!r} is not one of subjects, probes")
    if not trials:
        raise MetricInputError("trials: none given; expected at least one (probe_ids, rank, mate, top)")
    ids, rk, mates, tops, slices, start = [], [], [], [], [], 0
    for probe_ids, rank, mate, top in trials:
        r = np.asarray(rank, dtype=np.int64).reshape(-1)
        ids.append(_codes(probe_ids))
        rk.append(r)
        mates.append(np.asarray(mate, dtype=np.float64).reshape(-1))
        tops.append(np.asarray(top, dtype=np.float64).reshape(-1))
        if not (ids[-1].size == r.size == mates[-1].size == tops[-1].size):
            raise MetricInputError("trials: probe_ids, rank, mate_score and top_score differ in length")
        slices.append(slice(start, start + r.size))
        start += r.size
    all_rank = np.concatenate(rk)
    if unit == "subjects":
        design = subject_design(np.concatenate([i.astype(str) for i in ids]))
        design = Design("subjects", design.unit_a, design.unit_b, design.stratum)
    else:
        strata = np.concatenate([np.full(r.size, 2 * t) + (r > 0) for t, r in enumerate(rk)])
        design = pair_design(all_rank.size, strata)
        design = Design("probes", design.unit_a, design.unit_b, design.stratum, True)
    targets = [check_rate(t, "fpir_targets") for t in fpir_targets]
    opened = [_open_trial(rk[t], mates[t], tops[t], int(candidate_list)) for t in range(len(trials))] if targets else []
    # rank-1 hit rate at an FPIR: the same non-mated searches set T, a mated search counts only at rank 1
    opened1 = ([_open_trial(rk[t], mates[t], tops[t], 1) for t in range(len(trials))]
               if targets and int(candidate_list) != 1 else opened)
    hits = {k: ((all_rank > 0) & (all_rank <= k)).astype(np.int64) for k in ranks}
    mated = (all_rank > 0).astype(np.int64)

    def stat(w: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            for k, h in hits.items():
                out[f"rank{k}"] = np.mean([(w[:, sl] @ h[sl]) / (w[:, sl] @ mated[sl]) for sl in slices], axis=0)
        if targets:
            acc = _acc_dtype(w)
            per = [_roc_stats(*data.class_weights(w[:, sl][:, order]), targets, acc)
                   for sl, (data, order) in zip(slices, opened)]
            per1 = per if opened1 is opened else [_roc_stats(*data.class_weights(w[:, sl][:, order]), targets, acc)
                                                  for sl, (data, order) in zip(slices, opened1)]
            for t in targets:
                tpir = np.mean([p[f"tar_at_far:{t!r}"] for p in per], axis=0)
                out[f"tpir_at_fpir:{t!r}"] = tpir
                out[f"fnir_at_fpir:{t!r}"] = 1.0 - tpir
                out[f"rank1_hit_at_fpir:{t!r}"] = np.mean([p[f"tar_at_far:{t!r}"] for p in per1], axis=0)
        return out

    return stat, design


# -- detection: WIDER AP, bootstrap over images -------------------------------
def _wider_tables(predictions: Mapping[str, object], gt_boxes: Mapping[str, np.ndarray],
                  keep: Mapping[str, np.ndarray], iou_threshold: float, thresh_num: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image (in ``gt_boxes`` order), the counted proposals and recalled
    faces above each of the ``thresh_num`` thresholds, and its kept faces:
    the terms :func:`~harness.metrics.detection.wider_ap` sums."""
    from harness.metrics.detection import wider_image_eval

    arrays = {k: np.asarray(p, dtype=np.float64).reshape(-1, 5) if np.size(p) else np.zeros((0, 5))
              for k, p in predictions.items()}
    scores = np.concatenate([a[:, 4] for a in arrays.values()]) if arrays else np.zeros(0)
    lo, hi = (scores.min(), scores.max()) if scores.size else (0.0, 1.0)
    if scores.size and hi == lo:
        raise MetricInputError("predictions: every score is equal; the WIDER evaluation needs two distinct values")
    thresholds = 1 - (np.arange(thresh_num) + 1) / thresh_num
    keys = list(gt_boxes)
    table = np.zeros((len(keys), thresh_num, 2))
    faces = np.zeros(len(keys))
    for i, key in enumerate(keys):
        kp = np.asarray(keep[key], dtype=bool)
        faces[i] = kp.sum()
        p, gt = arrays.get(key), gt_boxes[key]
        if p is None or len(p) == 0 or len(gt) == 0:
            continue
        p = p[np.argsort(-p[:, 4], kind="stable")]
        score = (p[:, 4] - lo) / (hi - lo)
        pred_recall, proposal = wider_image_eval(p[:, :4], np.asarray(gt, dtype=np.float64), kp, iou_threshold)
        n_above = np.searchsorted(-score, -thresholds, side="right")
        has = n_above > 0
        r = n_above[has] - 1
        table[i, has, 0] = np.cumsum(proposal == 1)[r]
        table[i, has, 1] = pred_recall[r]
    return table, faces


def _voc_ap_rows(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """:func:`~harness.metrics.detection.voc_ap` of each row."""
    c = recall.shape[0]
    mrec = np.concatenate([np.zeros((c, 1)), recall, np.ones((c, 1))], axis=1)
    mpre = np.concatenate([np.zeros((c, 1)), precision, np.zeros((c, 1))], axis=1)
    mpre = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
    return np.sum((mrec[:, 1:] - mrec[:, :-1]) * mpre[:, 1:], axis=1)


def detection_ap_intervals(
    predictions: Mapping[str, object],
    gt_boxes: Mapping[str, np.ndarray],
    keeps: Mapping[str, Mapping[str, np.ndarray]],
    *,
    B: int = DEFAULT_B,
    seed: int = 0,
    level: float = 0.95,
    method: str = "percentile",
    iou_threshold: float = 0.5,
    thresh_num: int = 1000,
) -> dict[str, Interval]:
    """Bootstrap over images of the WIDER AP of each setting in ``keeps``
    (setting -> image key -> keep-list); the same image draws for every
    setting.  Scores stay min-max normalised over the whole set (the
    thresholds do not move between replicates); a replicate is
    :func:`~harness.metrics.detection.wider_ap` of the resampled images."""
    keys = list(gt_boxes)
    if not keys:
        raise MetricInputError("gt_boxes: no image; a bootstrap over images needs at least one")
    design = pair_design(len(keys))
    design = Design("images", design.unit_a, design.unit_b, design.stratum, True)
    out: dict[str, Interval] = {}
    for setting, keep in keeps.items():
        table, faces = _wider_tables(predictions, gt_boxes, keep, iou_threshold, thresh_num)
        flat = table.reshape(len(keys), -1)

        def stat(w: np.ndarray, flat=flat, faces=faces) -> dict[str, np.ndarray]:
            wf = w.astype(np.float64)
            pr = (wf @ flat).reshape(w.shape[0], thresh_num, 2)
            n_faces = wf @ faces
            with np.errstate(divide="ignore", invalid="ignore"):
                precision = np.where(pr[:, :, 0] > 0, pr[:, :, 1] / pr[:, :, 0], 0.0)
                ap = _voc_ap_rows(pr[:, :, 1] / n_faces[:, None], precision)
            ap[n_faces == 0] = np.nan
            return {"ap": ap}

        res = _run(stat, design, B, seed, level, method)
        if "ap" in res:
            out[setting] = res["ap"]
    return out
