"""Verification metrics at scale, against scikit-learn and the sort floor in the same run.

Evaluates N scores (default 10,000,000): the exact ROC, TAR@FAR at
1e-6 ... 1e-1 (strict) and 1e-6, 1e-3 (nearest), EER and AUC with
``harness.metrics.verification.Roc``; then scikit-learn's ``roc_curve`` +
``roc_auc_score`` on the same arrays.  Beside them it times the floor any
exact ROC pays -- one ``np.sort`` of the scores -- and the two ``argsort``
kinds (default and stable) a label-carrying sort would pay.  Prints the
times (best of ``--repeat``, interleaved so load drift hits all), the
speed-up, by wall clock and by this process's CPU time (less
disturbed when other processes share the cores), the peak traced memory (tracemalloc) of each, the process peak
RSS, and checks that the values are identical: the ROC points scikit-learn
keeps, the AUC, and TAR at the nearest FPR computed from scikit-learn's
curve the way insightface does.

    python benchmarks/bench_metrics.py [--n 10000000] [--ties] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np

STRICT = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
NEAREST = (1e-6, 1e-3)


def run_facebench(s, y):
    from harness.metrics.verification import Roc

    r = Roc(s, y)
    out = {f"tar@{t:g}": r.tar_at_far(t).tar for t in STRICT}
    out.update({f"nearest@{t:g}": r.tar_at_far(t, "nearest").tar for t in NEAREST})
    out["eer"] = r.eer()[0]
    out["auc"] = r.auc()
    return out, r


def run_sklearn(s, y):
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, thr = roc_curve(y, s)
    return {"auc": roc_auc_score(y, s)}, (fpr, tpr, thr)


def floor_sort(s, y):
    return np.sort(s)


def floor_argsort(s, y):
    return np.argsort(s)


def floor_argsort_stable(s, y):
    return np.argsort(s, kind="stable")


def timed(fn, *args, trace=False):
    """(result, (wall s, CPU s of this process), peak traced bytes or None)."""
    if trace:
        tracemalloc.start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    dt = (time.perf_counter() - t0, time.process_time() - c0)
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return out, dt, peak


def check_identical(fb, roc, sk, sk_curve):
    """Every value facebench reports that scikit-learn also gives must be equal."""
    fpr, tpr, thr = sk_curve
    fps, tps, thresholds, far = roc._sklearn_points()
    np.testing.assert_array_equal(far, fpr)
    np.testing.assert_array_equal(tps / roc.n_genuine, tpr)
    np.testing.assert_array_equal(thresholds, thr)
    assert abs(fb["auc"] - sk["auc"]) < 1e-12, (fb["auc"], sk["auc"])
    ffpr, ftpr = fpr[::-1], tpr[::-1]  # insightface: flip, then the first minimum
    for t in NEAREST:
        i = int(np.argmin(np.abs(ffpr - t)))
        assert fb[f"nearest@{t:g}"] == ftpr[i], (t, fb[f"nearest@{t:g}"], ftpr[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--ties", action="store_true", help="round scores to 3 decimals (many ties)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    y = rng.random(a.n) < 0.5
    s = rng.standard_normal(a.n) + 2.0 * y
    if a.ties:
        s = np.round(s, 3)
    print(f"n = {a.n:,} scores ({int(y.sum()):,} genuine){', rounded (ties)' if a.ties else ''}; "
          f"load average {os.getloadavg()[0]:.2f}")
    jobs = {"facebench": run_facebench, "sklearn": run_sklearn, "sort": floor_sort,
            "argsort": floor_argsort, "argsort_stable": floor_argsort_stable}
    times = {k: [] for k in jobs}
    outs = {}
    for _ in range(a.repeat):  # interleaved, so load drift hits every one
        for name, fn in jobs.items():
            outs[name], dt, _ = timed(fn, s, y)
            times[name].append(dt)
    (fb, roc), (sk, sk_curve) = outs["facebench"], outs["sklearn"]
    check_identical(fb, roc, sk, sk_curve)
    _, _, peak_fb = timed(run_facebench, s, y, trace=True)
    _, _, peak_sk = timed(run_sklearn, s, y, trace=True)
    t = {k: min(w for w, _ in v) for k, v in times.items()}  # wall clock
    c = {k: min(cpu for _, cpu in v) for k, v in times.items()}  # CPU time of this process

    def row(label, key, extra=""):
        print(f"{label:<40} {t[key]:7.3f} s wall {c[key]:7.3f} s CPU{extra}")

    row("facebench Roc + 8 TAR@FAR + EER + AUC:", "facebench", f"   peak traced {peak_fb / 2**20:6.0f} MiB")
    row("sklearn roc_curve + roc_auc_score:", "sklearn", f"   peak traced {peak_sk / 2**20:6.0f} MiB")
    row("floor: np.sort (default kind):", "sort")
    row("       np.argsort (default kind):", "argsort")
    row("       np.argsort (kind='stable'):", "argsort_stable")
    print(f"speed-up (sklearn / facebench): {t['sklearn'] / t['facebench']:.2f}x wall, "
          f"{c['sklearn'] / c['facebench']:.2f}x CPU; facebench / np.sort floor: "
          f"{t['facebench'] / t['sort']:.2f}x wall, {c['facebench'] / c['sort']:.2f}x CPU; "
          f"load average now {os.getloadavg()[0]:.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS: {rss:.0f} MiB (input arrays: {(s.nbytes + y.nbytes) / 2**20:.0f} MiB)")
    print("values (identical to scikit-learn where it gives them): "
          + ", ".join(f"{k}={v:.6g}" for k, v in fb.items()))


if __name__ == "__main__":
    main()
