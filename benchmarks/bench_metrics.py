"""Verification metrics at scale, against scikit-learn in the same run.

Evaluates N scores (default 10,000,000): the exact ROC, TAR@FAR at
1e-6 ... 1e-1 (strict and nearest), EER and AUC with
``harness.metrics.verification.Roc``; then scikit-learn's ``roc_curve`` +
``roc_auc_score`` on the same arrays.  Prints both times, their ratio, and
the peak traced memory (tracemalloc) of each, plus the process peak RSS.

    python benchmarks/bench_metrics.py [--n 10000000] [--ties]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np


def run_facebench(s, y):
    from harness.metrics.verification import Roc

    r = Roc(s, y)
    out = {f"tar@{t:g}": r.tar_at_far(t).tar for t in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)}
    out.update({f"nearest@{t:g}": r.tar_at_far(t, "nearest").tar for t in (1e-6, 1e-3)})
    out["eer"] = r.eer()[0]
    out["auc"] = r.auc()
    return out


def run_sklearn(s, y):
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, thr = roc_curve(y, s)
    return {"auc": roc_auc_score(y, s), "points": len(fpr)}


def timed(fn, *args, trace=False):
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, dt, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--ties", action="store_true", help="round scores to 3 decimals (many ties)")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    y = rng.random(a.n) < 0.5
    s = rng.standard_normal(a.n) + 2.0 * y
    if a.ties:
        s = np.round(s, 3)
    print(f"n = {a.n:,} scores ({int(y.sum()):,} genuine){', rounded (ties)' if a.ties else ''}")
    fb_times, sk_times = [], []
    for _ in range(a.repeat):  # interleaved, so load drift hits both
        fb, t_fb, _ = timed(run_facebench, s, y)
        sk, t_sk, _ = timed(run_sklearn, s, y)
        fb_times.append(t_fb)
        sk_times.append(t_sk)
    _, _, peak_fb = timed(run_facebench, s, y, trace=True)
    _, _, peak_sk = timed(run_sklearn, s, y, trace=True)
    t_fb, t_sk = min(fb_times), min(sk_times)
    assert abs(fb["auc"] - sk["auc"]) < 1e-9, (fb["auc"], sk["auc"])
    print(f"facebench Roc + 8 TAR@FAR + EER + AUC: {t_fb:7.2f} s   peak traced {peak_fb / 2**20:8.0f} MiB")
    print(f"sklearn roc_curve + roc_auc_score:    {t_sk:7.2f} s   peak traced {peak_sk / 2**20:8.0f} MiB")
    print(f"speed-up (sklearn / facebench): {t_sk / t_fb:.2f}x")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {rss:.0f} MiB (input arrays: {(s.nbytes + y.nbytes) / 2**20:.0f} MiB)")
    print("values: " + ", ".join(f"{k}={v:.6g}" for k, v in fb.items()))


if __name__ == "__main__":
    main()
