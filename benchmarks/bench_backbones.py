"""Training throughput of every registered backbone, against a named peer in the same run.

Each row times facebench's own training step — the torch engine's
``StepFunction`` with its ``Precision``, no-decay parameter groups, gradient
clipping at 5 and SGD with momentum — on forward + ArcFace loss over 1,000
classes + backward + update, batch 32, at the backbone's default input size.

The named peer is a plain eager IR-50 training step in the arcface_torch
``iresnet`` layout (``benchmarks/_ir50_reference.py``; IR-100 for the
lresnet100 row) at 112x112 with the same ArcFace head, clip and SGD step,
timed in the same process with the same threads, interleaved step by step
with facebench's (the order alternates each round) and taken best-of-N, so
load on the machine hits both alike.  Modes:

* ``fp32``            float32, NCHW, both sides;
* ``bf16_cl``         bf16 autocast + channels_last, both sides;
* ``compile``         facebench's step with ``torch.compile`` (fp32) against
                      its own eager step and the eager reference: the steady
                      gain and the cold-compile seconds;
* ``compile_bf16_cl`` the same under bf16 autocast + channels_last.

Achieved GFLOP/s is ``img/s x 2 x MACs x 3`` (2 FLOP per multiply-accumulate,
backward ~ 2x forward) with the spec's ``meta["macs"]``; the reference's MACs
are counted by ``facebench_plugins.backbones._profile`` (equal to
lresnet50's / lresnet100's, so for those rows the GFLOP/s ratio is the
plain img/s ratio).  ``--engine tf`` instead times the tf engine's Keras
training step (``_tf_trainer.TFTrainer``, weights copied from the torch
model) against the torch engine's, fp32, same batch and threads.

Usage::

    python benchmarks/bench_backbones.py                         # 2 warm-up + 5 timed steps per side
    python benchmarks/bench_backbones.py --quick --backbone lresnet50
    python benchmarks/bench_backbones.py --backbone lresnet50 --mode compile
    python benchmarks/bench_backbones.py --engine tf --quick

Prints a table and writes JSON to benchmarks/results/ (git-ignored) with the
load average before and after: other processes on the machine distort the
numbers (OpenMP threads that wait for each other suffer most).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _ir50_reference import IResNet, reference_step  # noqa: E402

from harness.config import TrainSettings  # noqa: E402
from harness.registry import Registry  # noqa: E402

#: mode -> (bf16 autocast + channels_last, torch.compile)
MODES = {"fp32": (False, False), "bf16_cl": (True, False), "compile": (False, True),
         "compile_bf16_cl": (True, True)}
DEFAULT_MODES = ("fp32", "bf16_cl")
CLASSES = 1000
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


def _gflops(ips: float, macs: int | None) -> float | None:
    return round(ips * 2.0 * macs * 3.0 / 1e9, 1) if macs else None


def _batch(batch: int, h: int, w: int, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, h, w, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, CLASSES, (batch,), generator=gen)


def _arcface(registry: Registry, embedding_size: int) -> torch.nn.Module:
    return registry.build("loss", "arcface", {}, embedding_size=embedding_size, num_classes=CLASSES)


# ------------------------------------------------------------------ the steps
def facebench_step(registry: Registry, name: str, batch: int, bf16: bool, compile_model: bool) -> Callable[[], float]:
    """facebench's training step of backbone ``name`` (the torch engine's StepFunction)."""
    from facebench_plugins.engines._trainer import Precision, Ranks, StepFunction, param_groups
    from facebench_plugins.engines.options import TorchEngineOptions

    spec = registry.get("backbone", name)
    torch.manual_seed(0)
    model = registry.build("backbone", name)
    loss = _arcface(registry, getattr(model, "embedding_size", spec.embedding_size))
    opts = TorchEngineOptions(precision="bf16" if bf16 else "fp32", compile=compile_model)
    precision = Precision.for_device(torch.device("cpu"), opts)
    precision.place(model)
    settings = TrainSettings(batch_size=batch, lr=0.01)  # weight decay 5e-4, gradient clip 5
    optimizer = torch.optim.SGD(param_groups({"model": model, "loss": loss}, settings.weight_decay),
                                lr=settings.lr, momentum=opts.momentum)
    step_fn = StepFunction(model, loss, optimizer, precision.scaler(), precision, settings, Ranks(),
                           compile_model=compile_model)
    model.train()
    loss.train()
    h, w = getattr(model, "input_size", None) or spec.input_size
    batches = itertools.repeat(_batch(batch, int(h), int(w), precision.channels_last))

    def step() -> float:
        return step_fn(batches, settings.lr, 0)[0]

    return step


def reference(registry: Registry, depth: int, batch: int, bf16: bool) -> Callable[[], float]:
    """The plain eager IR-``depth`` step, with the same ArcFace head."""
    torch.manual_seed(0)
    model = IResNet(depth)
    head = _arcface(registry, 512)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    head.train()
    x, y = _batch(batch, 112, 112, bf16)
    return reference_step(model, head, x, y, bf16)


def reference_macs(depth: int) -> int:
    from facebench_plugins.backbones._profile import profile

    return profile(IResNet(depth), (112, 112)).macs


def tf_step(registry: Registry, tf_engine, name: str, batch: int, workdir: Path) -> Callable[[], float]:
    """The tf engine's training step (``TFTrainer._run_step``, its tf.function) of backbone ``name``."""
    import numpy as np
    import tensorflow as tf

    from facebench_plugins.engines._tf_trainer import TFTrainer

    spec = registry.get("backbone", name)
    torch.manual_seed(0)
    model = registry.build("backbone", name)
    emb = getattr(model, "embedding_size", spec.embedding_size)
    kmodel = tf_engine.adapt("backbone", name, spec.make_options(None), model)
    kloss = tf_engine.adapt("loss", "arcface", registry.get("loss", "arcface").make_options(None),
                            _arcface(registry, emb))
    labels = np.arange(2 * batch) % CLASSES
    trainer = TFTrainer(tf_engine, kmodel, kloss, SimpleNamespace(labels=labels), backbone_spec=spec,
                        settings=TrainSettings(batch_size=batch, lr=0.01), workdir=workdir, seed=0,
                        sampler="random")
    h, w = (int(s) for s in kmodel.input_shape[1:3])
    x = tf.constant(np.random.default_rng(0).standard_normal((batch, h, w, 3)).astype(np.float32))
    y = tf.constant(labels[:batch].astype(np.int32))

    def step() -> float:  # the trainer's own step call (its tf.function, as fit() runs it)
        return float(trainer._run_step(x, y, 0.01)[0])

    return step


# ------------------------------------------------------------------ timing
def interleave(steps: dict[str, Callable[[], float]], warmup: int, iters: int) -> dict[str, dict]:
    """Warm each step up, then ``iters`` rounds of one step of each (the order turns every round);
    per step: the best and every timed step, and the first (cold) call's seconds."""
    names = list(steps)
    first: dict[str, float] = {}
    for _ in range(warmup):
        for n in names:
            t0 = time.perf_counter()
            value = steps[n]()
            first.setdefault(n, time.perf_counter() - t0)
            if value != value:  # NaN
                raise RuntimeError(f"{n}: the loss became NaN")
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(iters):
        for n in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            steps[n]()
            times[n].append(time.perf_counter() - t0)
    return {n: {"best_s": min(ts), "all_s": [round(t, 4) for t in ts], "first_s": first.get(n)}
            for n, ts in times.items()}


def torch_row(registry: Registry, name: str, mode: str, batch: int, warmup: int, iters: int,
              ref_macs: dict[int, int]) -> dict:
    """One backbone in one mode: facebench (eager or compiled) and the reference, interleaved."""
    bf16, compiled = MODES[mode]
    spec = registry.get("backbone", name)
    depth = 100 if name == "lresnet100" else 50
    steps = {"facebench": facebench_step(registry, name, batch, bf16, compiled)}
    if compiled:
        steps["facebench_eager"] = facebench_step(registry, name, batch, bf16, False)
    steps["reference"] = reference(registry, depth, batch, bf16)
    t = interleave(steps, max(warmup, 2) if compiled else warmup, iters)
    macs = spec.meta.get("macs")
    ips, ref_ips = batch / t["facebench"]["best_s"], batch / t["reference"]["best_s"]
    row = {
        "backbone": name, "mode": mode, "input_size": list(spec.input_size), "batch": batch,
        "img_per_s": round(ips, 2), "gflops": _gflops(ips, macs), "macs": macs,
        "step_s_best": round(t["facebench"]["best_s"], 4), "step_s_all": t["facebench"]["all_s"],
        "reference": f"IR-{depth} eager (arcface_torch iresnet layout), 112x112",
        "ref_img_per_s": round(ref_ips, 2), "ref_gflops": _gflops(ref_ips, ref_macs[depth]),
        "ref_step_s_all": t["reference"]["all_s"],
    }
    if row["gflops"] and row["ref_gflops"]:
        row["ratio_to_reference_gflops"] = round(row["gflops"] / row["ref_gflops"], 3)
        # the same ratio from the median steps: less swayed than the best by one lucky step
        med, ref_med = statistics.median(t["facebench"]["all_s"]), statistics.median(t["reference"]["all_s"])
        row["ratio_to_reference_gflops_median"] = round(
            row["ratio_to_reference_gflops"] * (batch / med) / ips * ref_ips / (batch / ref_med), 3)
    if macs == ref_macs[depth]:
        row["ratio_to_reference_img_per_s"] = round(ips / ref_ips, 3)
    if compiled:
        eager_ips = batch / t["facebench_eager"]["best_s"]
        row["eager_img_per_s"] = round(eager_ips, 2)
        row["compile_gain"] = round(ips / eager_ips, 3)
        row["cold_compile_s"] = round(t["facebench"]["first_s"] - t["facebench"]["best_s"], 1)
    return row


def tf_row(registry: Registry, tf_engine, name: str, batch: int, warmup: int, iters: int,
           workdir: Path) -> dict:
    """One backbone: the torch engine's fp32 step and the tf engine's, interleaved."""
    spec = registry.get("backbone", name)
    steps = {"torch": facebench_step(registry, name, batch, False, False),
             "tf": tf_step(registry, tf_engine, name, batch, workdir)}
    t = interleave(steps, warmup, iters)
    macs = spec.meta.get("macs")
    ips = {k: batch / v["best_s"] for k, v in t.items()}
    return {
        "backbone": name, "mode": "fp32", "input_size": list(spec.input_size), "batch": batch, "macs": macs,
        "torch_img_per_s": round(ips["torch"], 2), "tf_img_per_s": round(ips["tf"], 2),
        "torch_gflops": _gflops(ips["torch"], macs), "tf_gflops": _gflops(ips["tf"], macs),
        "tf_over_torch": round(ips["tf"] / ips["torch"], 3),
        "torch_step_s_all": t["torch"]["all_s"], "tf_step_s_all": t["tf"]["all_s"],
        "tf_first_step_s": round(t["tf"]["first_s"], 2),
    }


# ------------------------------------------------------------------ output
def _auto_precision() -> str:
    from facebench_plugins.engines._trainer import cpu_bf16_fast, cpu_bf16_supported

    if cpu_bf16_fast():
        return "bf16 autocast + channels_last (AMX)"
    return "float32 (bf16 instructions without AMX)" if cpu_bf16_supported() else "float32 (no bf16 instructions)"


def _print_torch(row: dict) -> None:
    h, w = row["input_size"]
    extra = ""
    if "compile_gain" in row:
        extra = f"  eager {row['eager_img_per_s']:.2f} img/s, gain {row['compile_gain']:.2f}x, " \
                f"cold compile {row['cold_compile_s']:.0f} s"
    print(f"{row['backbone']:<20} {f'{h}x{w}':>8} {row['mode']:>15} {row['img_per_s']:>8.2f} "
          f"{row['gflops'] or float('nan'):>8.1f} {row['ref_img_per_s']:>8.2f} {row['ref_gflops']:>8.1f} "
          f"{row.get('ratio_to_reference_gflops', float('nan')):>7.2f} "
          f"{row.get('ratio_to_reference_gflops_median', float('nan')):>7.2f}{extra}", flush=True)


def _print_tf(row: dict) -> None:
    h, w = row["input_size"]
    print(f"{row['backbone']:<20} {f'{h}x{w}':>8} {row['torch_img_per_s']:>10.2f} {row['tf_img_per_s']:>10.2f} "
          f"{row['tf_over_torch']:>8.2f}", flush=True)


def _write(result: dict, out: Path | None) -> Path:
    from harness.atomic import atomic_output

    out = out or RESULTS / f"bench_backbones-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, "w") as fh:
        fh.write(json.dumps(result, indent=2))
    return out


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 warm-up and 2 timed steps per side")
    ap.add_argument("--backbone", action="append", help="only these backbones (repeatable)")
    ap.add_argument("--mode", action="append", choices=list(MODES),
                    help=f"only these modes (repeatable; default {', '.join(DEFAULT_MODES)})")
    ap.add_argument("--engine", choices=("torch", "tf"), default="torch",
                    help="torch: facebench vs the IR reference; tf: the tf engine's step vs the torch engine's")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=None, help="timed steps per side (best of them)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/…)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    tf_engine = None
    registry = Registry()
    if args.engine == "tf":  # TensorFlow's threads are fixed by its first op: build the engine first
        tf_engine = registry.build("engine", "tf", {"threads": args.threads})
    torch.set_num_threads(args.threads)
    warmup, iters = (1, 2) if args.quick else (2, 5)
    iters = args.iters or iters
    names = args.backbone or [
        s.name for s in registry.specs("backbone") if registry.owner("backbone", s.name) == "backbones"
    ]
    for n in names:
        registry.get("backbone", n)  # an unknown name fails now, with its did-you-mean
    modes = args.mode or list(DEFAULT_MODES)
    load_before = _load()
    rows = []
    if tf_engine is not None:
        import tempfile

        print(f"{'backbone':<20} {'input':>8} {'torch img/s':>10} {'tf img/s':>10} {'tf/torch':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            for name in names:
                rows.append(tf_row(registry, tf_engine, name, args.batch_size, warmup, iters, Path(tmp)))
                _print_tf(rows[-1])
    else:
        ref_macs = {d: reference_macs(d) for d in ({100 if n == "lresnet100" else 50 for n in names})}
        print("peer: " + ", ".join(f"IR-{d} eager reference ({m / 1e9:.2f} GMACs)" for d, m in ref_macs.items()))
        print(f"{'backbone':<20} {'input':>8} {'mode':>15} {'img/s':>8} {'GFLOP/s':>8} {'ref img/s':>8} "
              f"{'ref GF/s':>8} {'ratio':>7} {'median':>7}")
        print(f"precision auto (the torch engine's default) trains in {_auto_precision()} on this CPU")
        for name in names:
            for mode in modes:
                rows.append(torch_row(registry, name, mode, args.batch_size, warmup, iters, ref_macs))
                _print_torch(rows[-1])
    result = {
        "benchmark": "bench_backbones", "engine": args.engine,
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick, "warmup": warmup, "iters": iters,
        "timing": "best (ratio; also the median ratio) of iters, interleaved",
        "threads": args.threads, "batch_size": args.batch_size,
        "step": "forward + arcface(1000 classes) + backward + clip 5 + SGD(momentum 0.9, wd 5e-4)",
        "flops_rule": "img/s x 2 x MACs x 3",
        "hardware": {"cpu": _cpu_name(), "cores": os.cpu_count(), "load_before": load_before,
                     "load_after": _load()},
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
        "rows": rows,
    }
    print(f"load average before {load_before}, after {result['hardware']['load_after']}")
    print(f"wrote {_write(result, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
