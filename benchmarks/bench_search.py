"""Exact top-k search at scale: facebench against faiss, numpy and the bare matrix product, in one run.

A gallery of G unit vectors (default 1,000,000 x 512 float32) and P unit probes (default 10,000);
the top-k (default 10) by inner product, computed by

* ``facebench``: ``harness.metrics.search.topk_search`` (blocked product, per-tile partial
  selection; backend ``--backend``, default auto = torch.mm on the CPU here);
* ``faiss``: ``faiss.IndexFlatIP`` (exact; it holds its own copy of the gallery);
* ``numpy``: the same tiles, ``np.matmul`` then ``np.argpartition`` and a sort of the k;
* ``matmul``: the bare blocked product into a preallocated tile, no selection at all — with
  torch.mm and with numpy's BLAS (the faster one is the floor facebench is held to);
* with ``--ivf``: ``faiss.IndexIVFFlat`` (approximate) and its recall@k against the exact lists.

Prints each method's time, probes per second, its throughput relative to facebench, the peak
resident memory it added beyond the gallery and probes (``VmHWM`` after resetting it through
``/proc/self/clear_refs``), and whether its top-k ids equal facebench's (lists that differ are
checked in float64: a difference only between entries whose exact scores are within 1e-6 of
each other is a near-tie that float32 rounding may order either way).  Also prints the load
average, since the machine may be shared.

    python benchmarks/bench_search.py [--gallery 1000000] [--probes 10000] [--dim 512] [--k 10]
        [--threads 2] [--max-memory 256] [--skip numpy,faiss] [--ivf] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import time


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gallery", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-memory", type=int, default=256, help="facebench score tile, MiB")
    ap.add_argument("--backend", default="auto", help="facebench backend (auto, numpy, torch)")
    ap.add_argument("--skip", default="", help="comma-separated methods not to run (faiss, numpy, matmul_numpy)")
    ap.add_argument("--ivf", action="store_true", help="also faiss IndexIVFFlat (approximate) and its recall")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="time facebench and the bare products this many times, interleaved (best kept): "
                         "on a shared machine the load drifts between methods")
    return ap.parse_args()


A = _args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(A.threads)

import numpy as np  # noqa: E402  (thread counts first)


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measured(name, fn):
    """Run ``fn``; (result, seconds, peak resident MiB added beyond what was resident before)."""
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
        fh.write("5")
    base = rss_kib("VmRSS")
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(f"  … {name} done in {dt:.2f} s (load average {os.getloadavg()[0]:.2f})",
          flush=True)
    return out, dt, (rss_kib("VmHWM") - base) / 1024


def unit_rows(n: int, d: int, rng: np.random.Generator, block: int = 65536) -> np.ndarray:
    x = np.empty((n, d), np.float32)
    for s in range(0, n, block):
        b = rng.standard_normal((min(block, n - s), d), dtype=np.float32)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        x[s:s + len(b)] = b
    return x


def tiles(p: np.ndarray, g: np.ndarray, mib: int):
    from harness.metrics.search import tile_shape

    rows, cols = tile_shape(len(p), len(g), mib << 20)
    for s in range(0, len(p), rows):
        for c0 in range(0, len(g), cols):
            yield s, min(len(p), s + rows), c0, min(len(g), c0 + cols)


def bare_matmul_torch(p, g, mib):
    import torch

    tp, tg = torch.from_numpy(p), torch.from_numpy(g)
    buf = None
    for s, e, c0, c1 in tiles(p, g, mib):
        if buf is None:
            buf = torch.empty((e - s) * (c1 - c0))
        torch.mm(tp[s:e], tg[c0:c1].t(), out=buf[:(e - s) * (c1 - c0)].view(e - s, c1 - c0))


def bare_matmul_numpy(p, g, mib):
    buf = None
    for s, e, c0, c1 in tiles(p, g, mib):
        if buf is None:
            buf = np.empty((e - s) * (c1 - c0), np.float32)
        np.matmul(p[s:e], g[c0:c1].T, out=buf[:(e - s) * (c1 - c0)].reshape(e - s, c1 - c0))


def numpy_argpartition(p, g, k, mib):
    """The plain way: tile product, argpartition per tile, merge, sort the k."""
    best_s = np.full((len(p), k), -np.inf, np.float32)
    best_i = np.zeros((len(p), k), np.int64)
    buf = None
    for s, e, c0, c1 in tiles(p, g, mib):
        if buf is None:
            buf = np.empty((e - s) * (c1 - c0), np.float32)
        sc = buf[:(e - s) * (c1 - c0)].reshape(e - s, c1 - c0)
        np.matmul(p[s:e], g[c0:c1].T, out=sc)
        kk = min(k, c1 - c0)
        part = np.argpartition(sc, -kk, axis=1)[:, -kk:]
        cs = np.concatenate([best_s[s:e], np.take_along_axis(sc, part, 1)], 1)
        ci = np.concatenate([best_i[s:e], part + c0], 1)
        keep = np.argpartition(cs, -k, axis=1)[:, -k:]
        best_s[s:e], best_i[s:e] = np.take_along_axis(cs, keep, 1), np.take_along_axis(ci, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, 1)


def faiss_flat(p, g, k, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    return index.search(p, k)[1]


def compare(p, g, ref, other, tol=1e-6):
    """(identical lists, lists differing only by near-ties, lists really different)."""
    same = np.all(np.sort(ref, 1) == np.sort(other, 1), axis=1)
    near = 0
    for i in np.flatnonzero(~same):
        a, b = set(ref[i].tolist()), set(other[i].tolist())
        diff = np.array(sorted(a ^ b))
        sc = g[diff].astype(np.float64) @ p[i].astype(np.float64)
        kth = np.sort(g[ref[i]].astype(np.float64) @ p[i].astype(np.float64))[0]
        near += bool(np.all(np.abs(sc - kth) <= tol))
    n_diff = int((~same).sum())
    return int(same.sum()), near, n_diff - near


def main() -> None:
    import torch

    from harness.metrics.search import topk_search

    torch.set_num_threads(A.threads)
    skip = {s.strip() for s in A.skip.split(",") if s.strip()}
    rng = np.random.default_rng(A.seed)
    t0 = time.perf_counter()
    g = unit_rows(A.gallery, A.dim, rng)
    p = unit_rows(A.probes, A.dim, rng)
    print(f"gallery {A.gallery:,} x {A.dim} float32 ({g.nbytes / 2**30:.2f} GiB), {A.probes:,} probes, "
          f"top-{A.k}, {A.threads} thread(s), made in {time.perf_counter() - t0:.1f} s; "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    # warm every library up (thread pools, BLAS dispatch) on a small slice before timing
    topk_search(p[:64], g[:8192], A.k, backend=A.backend)
    bare_matmul_torch(p[:64], g[:8192], A.max_memory)
    bare_matmul_numpy(p[:64], g[:8192], A.max_memory)
    if "faiss" not in skip:
        faiss_flat(p[:64], g[:8192], A.k, A.threads)
    runs = {}
    for r in range(A.repeat):  # interleaved: each round times facebench and both bare products back to back
        res, dt, mem = measured("facebench", lambda: topk_search(p, g, A.k, backend=A.backend,
                                                                 max_memory=A.max_memory << 20))
        keep(runs, "facebench", (dt, mem, res.indices, res.backend))
        _, dt, mem = measured("matmul (torch.mm)", lambda: bare_matmul_torch(p, g, A.max_memory))
        keep(runs, "matmul (torch.mm)", (dt, mem, None, "no selection"))
        if "matmul_numpy" not in skip:
            _, dt, mem = measured("matmul (numpy)", lambda: bare_matmul_numpy(p, g, A.max_memory))
            keep(runs, "matmul (numpy)", (dt, mem, None, "no selection"))
    if "faiss" not in skip:
        ids, dt, mem = measured("faiss IndexFlatIP", lambda: faiss_flat(p, g, A.k, A.threads))
        runs["faiss IndexFlatIP"] = (dt, mem, ids, "exact")
    if "numpy" not in skip:
        ids, dt, mem = measured("numpy matmul+argpartition", lambda: numpy_argpartition(p, g, A.k, A.max_memory))
        runs["numpy matmul+argpartition"] = (dt, mem, ids, "same tiles")
    report(p, g, runs)
    if A.ivf:
        ivf(p, g, runs["facebench"][2])


def keep(runs, name, entry) -> None:
    """The best time of the repeats (and the largest peak memory)."""
    if name in runs:
        old = runs[name]
        entry = (min(old[0], entry[0]), max(old[1], entry[1]), *entry[2:])
    runs[name] = entry


def report(p, g, runs) -> None:
    fb = runs["facebench"][0]
    print(f"{'method':28s} {'seconds':>8s} {'probes/s':>9s} {'fb speed-up':>11s} {'+peak MiB':>9s}  top-k ids")
    for name, (dt, mem, ids, note) in runs.items():
        if ids is None or name == "facebench":
            same = f"({note})"
        else:
            eq, near, bad = compare(p, g, runs["facebench"][2], ids)
            same = f"identical {eq}/{len(p)}; near-ties {near}; different {bad}"
        print(f"{name:28s} {dt:8.2f} {len(p) / dt:9.1f} {dt / fb:10.2f}x {mem:9.0f}  {same}")
    floor = min(dt for n, (dt, *_r) in runs.items() if n.startswith("matmul"))
    print(f"facebench / fastest bare matmul: {fb / floor:.2f}x time; load average now "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def ivf(p, g, exact) -> None:
    from harness.metrics.search import topk_search

    t0 = time.perf_counter()
    res, dt, mem = measured("faiss IndexIVFFlat", lambda: topk_search(p, g, A.k, backend="faiss-ivf", nlist=A.nlist, nprobe=A.nprobe))
    recall = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact.tolist(), res.indices.tolist())])
    print(f"{res.backend}: {dt:.2f} s with training ({time.perf_counter() - t0:.2f} s), +{mem:.0f} MiB, "
          f"recall@{A.k} against the exact lists {recall:.4f}")


if __name__ == "__main__":
    main()
