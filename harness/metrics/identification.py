"""Identification (1:N) metrics: CMC / rank-k (closed set) and TPIR@FPIR
(open set, NIST FRVT definitions).

``similarity`` is a (probes, gallery) matrix of similarity scores; a gallery
entry is a candidate for a probe when their ids are equal (several gallery
entries may share an id; the best of them counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.metrics._checks import MetricInputError, check_rate

__all__ = ["cmc", "cmc_from_ranks", "fnir_at_fpir", "identity_max", "mate_ranks", "open_set_det", "open_set_point",
           "rank_k", "tpir_at_fpir", "OpenSetPoint"]


def _inputs(similarity, probe_ids, gallery_ids):
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise MetricInputError(f"similarity: has shape {sim.shape}; expected (probes, gallery)")
    if not np.isfinite(sim).all():
        raise MetricInputError("similarity: contains NaN or infinite values; expected finite scores")
    p = np.asarray(probe_ids).reshape(-1)
    g = np.asarray(gallery_ids).reshape(-1)
    if p.size != sim.shape[0]:
        raise MetricInputError(f"probe_ids: {p.size} ids for {sim.shape[0]} similarity rows; expected one per probe")
    if g.size != sim.shape[1]:
        raise MetricInputError(
            f"gallery_ids: {g.size} ids for {sim.shape[1]} similarity columns; expected one per gallery entry"
        )
    if g.size == 0:
        raise MetricInputError("gallery_ids: the gallery is empty")
    return sim, p, g


def mate_ranks(similarity: object, probe_ids: object, gallery_ids: object) -> tuple[np.ndarray, np.ndarray]:
    """``(rank, mate_score)`` per probe: rank = 1 + the number of non-mate
    gallery scores ``>=`` the best mate score (ties count against the probe,
    bob.measure's rule); rank 0 and score NaN for a probe with no mate."""
    sim, p, g = _inputs(similarity, probe_ids, gallery_ids)
    mate = p[:, None] == g[None, :]
    has = mate.any(axis=1)
    best = np.where(mate, sim, -np.inf).max(axis=1)
    above = np.count_nonzero((sim >= best[:, None]) & ~mate, axis=1)
    ranks = np.where(has, above + 1, 0)
    return ranks.astype(np.int64), np.where(has, best, np.nan)


def cmc(similarity: object, probe_ids: object, gallery_ids: object, max_rank: int | None = None,
        *, nonmated: str = "exclude") -> np.ndarray:
    """Cumulative match characteristic: ``out[k-1]`` = fraction of probes
    whose mate is within rank k, for k = 1..max_rank (default: gallery size).

    Probes with no mate in the gallery are left out (``nonmated="exclude"``)
    or counted as misses (``"miss"``, as bob.measure's ``cmc``); with
    ``"error"`` they raise.
    """
    ranks, _ = mate_ranks(similarity, probe_ids, gallery_ids)
    n_gallery = np.asarray(similarity).shape[1]
    if max_rank is None:
        max_rank = n_gallery
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise MetricInputError(f"max_rank: {max_rank!r}; expected an integer >= 1")
    if nonmated not in ("exclude", "miss", "error"):
        raise MetricInputError(f"nonmated: {nonmated!r}; expected 'exclude', 'miss' or 'error'")
    no_mate = ranks == 0
    if nonmated == "error" and no_mate.any():
        raise MetricInputError(f"probe_ids: {int(no_mate.sum())} probe(s) have no mate in gallery_ids")
    return cmc_from_ranks(ranks, max_rank, nonmated_miss=nonmated == "miss")


def cmc_from_ranks(ranks: object, max_rank: int, *, nonmated_miss: bool = False) -> np.ndarray:
    """The CMC from per-probe mate ranks (0: no mate in the gallery; left out, or a miss
    with ``nonmated_miss``): ``out[k-1]`` = fraction of probes with 1 <= rank <= k."""
    ranks = np.asarray(ranks, dtype=np.int64).reshape(-1)
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise MetricInputError(f"max_rank: {max_rank!r}; expected an integer >= 1")
    counted = ranks[ranks > 0]
    denom = ranks.size if nonmated_miss else counted.size
    if denom == 0:
        raise MetricInputError("probe_ids: no probe has a mate in gallery_ids; CMC is undefined")
    hist = np.bincount(np.minimum(counted, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1]
    return np.cumsum(hist) / float(denom)


def identity_max(similarity: object, gallery_ids: object) -> tuple[np.ndarray, np.ndarray]:
    """Pool a (probes, gallery entries) matrix to (probes, gallery identities): an identity's
    score is the maximum over its entries.  Returns ``(pooled, identities)`` (identities sorted)."""
    sim = np.asarray(similarity)
    g = np.asarray(gallery_ids).reshape(-1)
    if sim.ndim != 2 or sim.shape[1] != g.size or g.size == 0:
        raise MetricInputError(f"similarity: shape {sim.shape} for {g.size} gallery ids; expected (probes, gallery)")
    order = np.argsort(g, kind="stable")
    ids, starts = np.unique(g[order], return_index=True)
    return np.maximum.reduceat(sim[:, order], starts, axis=1), ids


def rank_k(similarity: object, probe_ids: object, gallery_ids: object, k: int = 1, **kw) -> float:
    """Fraction of (mated) probes identified within rank ``k``."""
    return float(cmc(similarity, probe_ids, gallery_ids, max_rank=k, **kw)[k - 1])


@dataclass(frozen=True)
class OpenSetPoint:
    """TPIR at an FPIR target: ``threshold`` is the lowest that keeps FPIR <= target.
    FNIR = 1 - TPIR (NIST's false negative identification rate)."""

    target: float
    tpir: float
    fpir: float
    threshold: float
    rank: int
    defined: bool

    @property
    def fnir(self) -> float:
        return 1.0 - self.tpir


def _open_inputs(ranks, mate_score, top_score):
    r = np.asarray(ranks, dtype=np.int64).reshape(-1)
    m = np.asarray(mate_score, dtype=np.float64).reshape(-1)
    t = np.asarray(top_score, dtype=np.float64).reshape(-1)
    if not (r.size == m.size == t.size):
        raise MetricInputError(f"ranks, mate_score, top_score: lengths {r.size}, {m.size}, {t.size}; expected equal")
    mated = r > 0
    n_m, n_nm = int(mated.sum()), int((~mated).sum())
    if n_m == 0 or n_nm == 0:
        raise MetricInputError(
            f"probe_ids: {'no' if n_m == 0 else 'every'} probe has a mate in the gallery; "
            "open-set rates (TPIR@FPIR) need both mated and non-mated searches"
        )
    if not (np.isfinite(m[mated]).all() and np.isfinite(t[~mated]).all()):
        raise MetricInputError("mate_score, top_score: contain NaN or infinite values; expected finite scores")
    return r, m, t, mated


def open_set_point(ranks: object, mate_score: object, top_score: object, fpir: float = 1e-2,
                   rank: int = 1) -> OpenSetPoint:
    """:func:`tpir_at_fpir` from per-search results: ``ranks`` (0 for a non-mated search),
    the mate's score (mated searches) and the top candidate's score (non-mated searches)."""
    target = check_rate(fpir, "fpir")
    if not isinstance(rank, (int, np.integer)) or rank < 1:
        raise MetricInputError(f"rank: {rank!r}; expected an integer >= 1")
    r, m, t, mated = _open_inputs(ranks, mate_score, top_score)
    n_m, n_nm = int(mated.sum()), int((~mated).sum())
    top = np.sort(t[~mated])[::-1]  # non-mated top scores, descending
    # allowed false positives: the largest k with k / n_nm <= target
    counts = np.arange(n_nm + 1) / n_nm
    k = int(np.searchsorted(counts, target, side="right")) - 1
    thr = -np.inf if k >= n_nm else float(np.nextafter(top[k], np.inf))  # every top[:k] (strictly above) may pass
    fp = np.count_nonzero(top >= thr)
    hits = np.count_nonzero((r[mated] <= rank) & (m[mated] >= thr))
    return OpenSetPoint(target, hits / n_m, fp / n_nm, thr, int(rank), bool(target * n_nm >= 1 - 1e-9))


def fnir_at_fpir(ranks: object, mate_score: object, top_score: object, fpir: float = 1e-2,
                 rank: int = 1) -> OpenSetPoint:
    """FNIR(T, R) at the lowest threshold T with FPIR(T) <= ``fpir`` (NIST FRVT 1:N terms); the
    point's ``fnir`` is 1 - ``tpir``.  Same rules as :func:`open_set_point`."""
    return open_set_point(ranks, mate_score, top_score, fpir, rank)


def open_set_det(ranks: object, mate_score: object, top_score: object, rank: int = 1) -> dict[str, list[float]]:
    """The open-set DET: (FPIR, FNIR) at every threshold T equal to a distinct non-mated top
    score (and +inf), highest first; a search passes when its score is ``>= T``."""
    r, m, t, mated = _open_inputs(ranks, mate_score, top_score)
    nm = np.sort(t[~mated])
    thr = np.r_[np.inf, np.unique(nm)[::-1]]
    fpir = (nm.size - np.searchsorted(nm, thr, side="left")) / nm.size
    ok = np.sort(np.where(r[mated] <= rank, m[mated], -np.inf))
    fnir = np.searchsorted(ok, thr, side="left") / ok.size
    return {"threshold": thr.tolist(), "fpir": fpir.tolist(), "fnir": fnir.tolist()}


def tpir_at_fpir(similarity: object, probe_ids: object, gallery_ids: object, fpir: float = 1e-2,
                 rank: int = 1) -> OpenSetPoint:
    """Open-set identification per NIST FRVT (NISTIR 8271).

    FPIR(T) = fraction of non-mated searches whose top candidate scores
    ``>= T``.  FNIR(T, R) = fraction of mated searches whose mate is not
    within rank R (ties against) with score ``>= T``; TPIR = 1 - FNIR.  T is
    the lowest threshold with FPIR(T) <= ``fpir`` (strict).  ``defined`` is
    False when ``fpir < 1 / N_nonmated``.
    """
    check_rate(fpir, "fpir")
    sim, p, g = _inputs(similarity, probe_ids, gallery_ids)
    ranks, mate_score = mate_ranks(sim, p, g)
    return open_set_point(ranks, mate_score, sim.max(axis=1), fpir, rank)
