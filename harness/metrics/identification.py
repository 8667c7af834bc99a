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

__all__ = ["cmc", "mate_ranks", "rank_k", "tpir_at_fpir", "OpenSetPoint"]


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
    counted = ranks[~no_mate]
    denom = counted.size if nonmated == "exclude" else ranks.size
    if denom == 0:
        raise MetricInputError("probe_ids: no probe has a mate in gallery_ids; CMC is undefined")
    hist = np.bincount(np.minimum(counted, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1]
    return np.cumsum(hist) / float(denom)


def rank_k(similarity: object, probe_ids: object, gallery_ids: object, k: int = 1, **kw) -> float:
    """Fraction of (mated) probes identified within rank ``k``."""
    return float(cmc(similarity, probe_ids, gallery_ids, max_rank=k, **kw)[k - 1])


@dataclass(frozen=True)
class OpenSetPoint:
    """TPIR at an FPIR target: ``threshold`` is the lowest that keeps FPIR <= target."""

    target: float
    tpir: float
    fpir: float
    threshold: float
    rank: int
    defined: bool


def tpir_at_fpir(similarity: object, probe_ids: object, gallery_ids: object, fpir: float = 1e-2,
                 rank: int = 1) -> OpenSetPoint:
    """Open-set identification per NIST FRVT (NISTIR 8271).

    FPIR(T) = fraction of non-mated searches whose top candidate scores
    ``>= T``.  FNIR(T, R) = fraction of mated searches whose mate is not
    within rank R (ties against) with score ``>= T``; TPIR = 1 - FNIR.  T is
    the lowest threshold with FPIR(T) <= ``fpir`` (strict).  ``defined`` is
    False when ``fpir < 1 / N_nonmated``.
    """
    target = check_rate(fpir, "fpir")
    if not isinstance(rank, (int, np.integer)) or rank < 1:
        raise MetricInputError(f"rank: {rank!r}; expected an integer >= 1")
    sim, p, g = _inputs(similarity, probe_ids, gallery_ids)
    ranks, mate_score = mate_ranks(sim, p, g)
    mated = ranks > 0
    n_m, n_nm = int(mated.sum()), int((~mated).sum())
    if n_m == 0 or n_nm == 0:
        raise MetricInputError(
            f"probe_ids: {'no' if n_m == 0 else 'every'} probe has a mate in the gallery; "
            "TPIR@FPIR needs both mated and non-mated searches"
        )
    top = np.sort(sim[~mated].max(axis=1))[::-1]  # non-mated top scores, descending
    # allowed false positives: the largest k with k / n_nm <= target
    counts = np.arange(n_nm + 1) / n_nm
    k = int(np.searchsorted(counts, target, side="right")) - 1
    if k >= n_nm:
        thr = -np.inf
    else:
        thr = float(np.nextafter(top[k], np.inf))  # every top[:k] (strictly above) may pass
    fp = np.count_nonzero(top >= thr)
    hits = np.count_nonzero((ranks[mated] <= rank) & (mate_score[mated] >= thr))
    return OpenSetPoint(target, hits / n_m, fp / n_nm, thr, int(rank), bool(target * n_nm >= 1 - 1e-9))
