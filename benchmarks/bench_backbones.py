"""Training throughput of every registered backbone on this CPU.

For each backbone at its default input size: images per second of a full
training step (forward + ArcFace loss over 1,000 classes + backward + SGD
step with momentum), batch 32, in two modes:

* ``fp32``     — float32, contiguous (NCHW) tensors;
* ``bf16_cl``  — bf16 autocast + channels_last model and input.

The achieved rate in GFLOP/s is ``img/s x 2 x MACs x 3`` (2 FLOP per
multiply-accumulate; backward ~ 2x forward), with MACs from the spec's
``meta["macs"]`` (recounted by the backbone tests).  The named peer, measured
in the same run with the same threads, is an fp32 2048 x 2048 ``torch.matmul``
(BASELINES.md: ~190 GFLOP/s with 2 threads); each row reports its ratio to it.

Usage::

    python benchmarks/bench_backbones.py            # 2 warm-up + 5 timed steps
    python benchmarks/bench_backbones.py --quick    # 1 warm-up + 2 timed steps
    python benchmarks/bench_backbones.py --backbone lresnet50 --mode fp32

Prints a table and writes JSON to benchmarks/results/ (git-ignored).  Other
processes on the machine distort the numbers (OpenMP threads that wait for
each other suffer most): the JSON records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from harness.registry import Registry

MODES = ("fp32", "bf16_cl")
RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an fp32 n x n matmul (2 n^3 FLOP each), best of ``repeats``."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def train_throughput(registry: Registry, name: str, mode: str, batch: int, warmup: int,
                     iters: int) -> dict:
    """img/s of forward + loss + backward + SGD step; median step time of ``iters``."""
    spec = registry.get("backbone", name)
    torch.manual_seed(0)
    model = registry.build("backbone", name)
    h, w = spec.input_size
    embedding_size = getattr(model, "embedding_size", spec.embedding_size)
    loss = registry.build("loss", "arcface", {}, embedding_size=embedding_size, num_classes=1000)
    model.train()
    loss.train()
    x = torch.randn(batch, 3, h, w)
    y = torch.randint(0, 1000, (batch,))
    channels_last = mode == "bf16_cl"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    params = [p for p in list(model.parameters()) + list(loss.parameters()) if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16_cl"):
            emb = model(x)
        value = loss(emb.float(), y)
        value.backward()
        opt.step()
        if not torch.isfinite(value):
            raise RuntimeError(f"{name} {mode}: loss became {float(value)}")
        return time.perf_counter() - t0

    for _ in range(warmup):
        step()
    times = sorted(step() for _ in range(iters))
    median = times[len(times) // 2]
    macs = spec.meta.get("macs")
    ips = batch / median
    out = {
        "backbone": name,
        "mode": mode,
        "input_size": [h, w],
        "batch": batch,
        "step_s_median": round(median, 4),
        "step_s_all": [round(t, 4) for t in times],
        "img_per_s": round(ips, 2),
        "macs": macs,
    }
    if macs:
        out["gflops"] = round(ips * 2.0 * macs * 3.0 / 1e9, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed steps per row")
    ap.add_argument("--backbone", action="append", help="only these backbones (repeatable)")
    ap.add_argument("--mode", action="append", choices=MODES, help="only these modes (repeatable)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/…)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    warmup, iters = (1, 2) if args.quick else (2, 5)
    registry = Registry()
    names = args.backbone or [
        s.name for s in registry.specs("backbone") if registry.owner("backbone", s.name) == "backbones"
    ]
    modes = args.mode or list(MODES)
    load_before = _load()

    # fp32 only: a plain bf16 2048^2 torch.matmul takes minutes on this CPU build (a slow
    # fallback path), while bf16 convolutions under autocast are fast
    peer = matmul_gflops()
    print(f"peer: fp32 2048^2 matmul {peer:.1f} GFLOP/s ({args.threads} threads)", flush=True)

    rows = []
    header = f"{'backbone':<20} {'input':>8} {'mode':>8} {'img/s':>8} {'step s':>8} {'GFLOP/s':>8} {'/matmul':>8}"
    print(header)
    print("-" * len(header))
    for name in names:
        for mode in modes:
            row = train_throughput(registry, name, mode, args.batch_size, warmup, iters)
            if "gflops" in row:
                row["ratio_to_fp32_matmul"] = round(row["gflops"] / peer, 3)
            rows.append(row)
            h, w = row["input_size"]
            print(
                f"{name:<20} {f'{h}x{w}':>8} {mode:>8} {row['img_per_s']:>8.2f} "
                f"{row['step_s_median']:>8.2f} {row.get('gflops', float('nan')):>8.1f} "
                f"{row.get('ratio_to_fp32_matmul', float('nan')):>8.2f}",
                flush=True,
            )

    result = {
        "benchmark": "bench_backbones",
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "warmup": warmup,
        "iters": iters,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "step": "forward + arcface(1000 classes) + backward + SGD(momentum, wd)",
        "flops_rule": "img/s x 2 x MACs x 3",
        "peer": {"name": "fp32 2048x2048 torch.matmul", "gflops": round(peer, 1)},
        "hardware": {"cpu": _cpu_name(), "cores": os.cpu_count(), "load_before": load_before,
                     "load_after": _load()},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
        "rows": rows,
    }
    out = args.out or RESULTS / f"bench_backbones-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
