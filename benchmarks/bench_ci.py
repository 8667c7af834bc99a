"""Bootstrap confidence intervals at scale, against scipy.stats.bootstrap in one run.

1. **LFW View 2 shape**: the 6,000 pairs, 10 folds and people of the real
   ``pairs.txt`` (``FACEBENCH_DATA/lfw_home/pairs.txt``) with simulated
   scores (binormal with per-person offsets).  1,000 replicates of the
   10-fold accuracy, TAR@FAR (1e-3, 1e-2, 1e-1), EER and AUC with
   ``harness.metrics.uncertainty.verification_intervals``, resampling
   subjects, then pairs.  Peer: ``scipy.stats.bootstrap`` (``paired=True``
   over the pairs, percentile, ``vectorized=False``) with a statistic that
   evaluates the same metrics with ``harness.metrics`` on each resample.
2. **10^6 scores**: 100,000 genuine pairs (10 per person, 10,000 people)
   and 900,000 impostor pairs of random people; 1,000 replicates of TAR@FAR
   (1e-6 ... 1e-1), EER and AUC, subjects then pairs.  The scipy peer
   runs ``--peer-replicates`` resamples (default 10) and its time is scaled
   to 1,000 -- stated in the output as extrapolated.

The machine may be shared: the load average is printed before and after;
read the times with it.

    OMP_NUM_THREADS=1 python benchmarks/bench_ci.py [--B 1000] [--skip-large]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

TARGETS_LFW = (1e-3, 1e-2, 1e-1)
TARGETS_LARGE = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def lfw_structure() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """labels, folds, person a, person b of LFW View 2's pairs.txt."""
    from harness.formats.pairs import parse_pairs
    from harness.paths import data_path

    pf = parse_pairs(data_path("lfw_home/pairs.txt"))
    y = np.array([p.issame for p in pf.pairs], dtype=np.int64)
    f = np.array([p.fold for p in pf.pairs], dtype=np.int64)
    a = np.array([p.name1 for p in pf.pairs], dtype=object)
    b = np.array([p.name2 for p in pf.pairs], dtype=object)
    return y, f, a, b


def simulate(y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0, mu: float = 3.0,
             tau: float = 0.3) -> np.ndarray:
    """Binormal scores with a per-person offset (variance ``tau``)."""
    rng = np.random.default_rng(seed)
    names, inv = np.unique(np.concatenate([a.astype(str), b.astype(str)]), return_inverse=True)
    ia, ib = inv[: a.size], inv[a.size:]
    u = rng.normal(0, np.sqrt(tau), names.size)
    v = rng.normal(0, np.sqrt(tau / 2), names.size)
    noise = rng.normal(0, np.sqrt(1 - tau), y.size)
    return np.where(y == 1, mu + u[ia], v[ia] + v[ib]) + noise


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def ours(s, y, f, a, b, unit, B, targets):
    from harness.metrics.uncertainty import verification_intervals

    return verification_intervals(s, y, folds=f, subject_a=a, subject_b=b, unit=unit, B=B, seed=0,
                                  far_targets=targets)


def scipy_peer(s, y, f, B, targets, with_accuracy):
    """scipy.stats.bootstrap over pairs, the same metrics per resample."""
    from scipy.stats import bootstrap

    from harness.metrics.lfw import kfold_accuracy_from_scores
    from harness.metrics.verification import Roc

    def stat(si, yi, fi):
        if yi.min() == yi.max():
            return np.full(len(targets) + 2 + with_accuracy, np.nan)
        r = Roc(si, yi)
        out = [r.tar_at_far(t).tar for t in targets] + [r.eer()[0], r.auc()]
        if with_accuracy:
            out.append(kfold_accuracy_from_scores(si, yi, fi).mean)
        return np.array(out)

    return bootstrap((s, y, f), stat, n_resamples=B, paired=True, vectorized=False, method="percentile",
                     rng=np.random.default_rng(0))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def bench_lfw(B: int) -> None:
    y, f, a, b = lfw_structure()
    s = simulate(y, a, b)
    n_people = np.unique(np.concatenate([a.astype(str), b.astype(str)])).size
    print(f"\n== LFW View 2 structure: {y.size} pairs, {np.unique(f).size} folds, {n_people} people; "
          f"B = {B}")
    sub, t_sub = timed(lambda: ours(s, y, f, a, b, "subjects", B, TARGETS_LFW))
    pair, t_pair = timed(lambda: ours(s, y, f, a, b, "pairs", B, TARGETS_LFW))
    peer, t_peer = timed(lambda: scipy_peer(s, y, f, B, TARGETS_LFW, True))
    print(f"facebench, subjects : {t_sub:7.2f} s   (target < 5 s)")
    print(f"facebench, pairs    : {t_pair:7.2f} s")
    print(f"scipy.stats.bootstrap, pairs (same metrics, per-resample loop): {t_peer:7.2f} s")
    print(f"ratio scipy / facebench (pairs): {t_peer / t_pair:6.1f}x")
    lo, hi = peer.confidence_interval
    names = [f"tar_at_far:{t!r}" for t in TARGETS_LFW] + ["eer", "auc", "accuracy"]
    print(f"{'metric':<22} {'subjects':>20} {'pairs':>20} {'scipy pairs':>20}")
    for i, k in enumerate(names):
        print(f"{k:<22} [{sub[k].low:.4f}, {sub[k].high:.4f}]  [{pair[k].low:.4f}, {pair[k].high:.4f}]  "
              f"[{lo[i]:.4f}, {hi[i]:.4f}]")


def bench_large(B: int, peer_reps: int) -> None:
    rng = np.random.default_rng(1)
    people, per = 10_000, 10
    ga = np.repeat(np.arange(people), per)
    ia = rng.integers(0, people, 900_000)
    ib = (ia + rng.integers(1, people, ia.size)) % people
    a, b = np.r_[ga, ia], np.r_[ga, ib]
    y = np.r_[np.ones(ga.size, dtype=np.int64), np.zeros(ia.size, dtype=np.int64)]
    s = simulate(y, a.astype(str).astype(object), b.astype(str).astype(object), seed=2)
    print(f"\n== 10^6 scores: {ga.size} genuine, {ia.size} impostor, {people} people; B = {B}")
    _, t_sub = timed(lambda: ours(s, y, None, a, b, "subjects", B, TARGETS_LARGE))
    _, t_pair = timed(lambda: ours(s, y, None, a, b, "pairs", B, TARGETS_LARGE))
    f = np.zeros(y.size, dtype=np.int64)
    _, t_peer = timed(lambda: scipy_peer(s, y, f, peer_reps, TARGETS_LARGE, False))
    peer_scaled = t_peer * B / peer_reps
    print(f"facebench, subjects : {t_sub:7.2f} s   (target < 60 s)")
    print(f"facebench, pairs    : {t_pair:7.2f} s")
    print(f"scipy.stats.bootstrap, pairs: {t_peer:.2f} s for {peer_reps} resamples -> "
          f"{peer_scaled:.0f} s for {B} (extrapolated)")
    print(f"ratio scipy / facebench (pairs): {peer_scaled / t_pair:6.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--B", type=int, default=1000, help="bootstrap replicates")
    ap.add_argument("--peer-replicates", type=int, default=10, help="scipy resamples on 10^6 scores")
    ap.add_argument("--skip-large", action="store_true", help="only the LFW-shaped set")
    a = ap.parse_args()
    print("before:", load())
    bench_lfw(a.B)
    if not a.skip_large:
        bench_large(a.B, a.peer_replicates)
    print("\nafter:", load())
    print("times are wall-clock on a machine others may share; compare them with the load average")


if __name__ == "__main__":
    main()
