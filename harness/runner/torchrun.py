"""Distributed runs: launch ``harness run`` under torchrun, and the grid loop
every rank executes.

``harness run --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint
HOST:PORT]`` writes the resolved :class:`~harness.config.RunConfig` to a YAML
file and starts ``python -m torch.distributed.run … -m harness run --config
FILE``.  Each worker sees torchrun's ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` and runs :func:`run_grid_distributed`:

* the process group is initialised once per process: NCCL when CUDA is
  available (and the run's device is not ``cpu``), else gloo; each rank
  binds ``cuda:LOCAL_RANK``;
* rank 0 finds or creates each run's folder (exactly as the local runner
  does) and tells the others; rank 0 alone writes ``results.json``, the run
  log, checkpoints and the HTML report.  Other ranks work in a private
  temporary folder that is removed afterwards;
* the engine wraps the model in DDP and shards the data of each global batch
  by rank (see :mod:`facebench_plugins.engines.torch_engine`);
* after each run the ranks exchange their status, so a failure on any rank
  is recorded as the run's failure, and all ranks go on to the next run
  together;
* the process group is destroyed at the end (the engine has deleted its DDP
  wrappers by then).

Evaluation runs on every rank (the same embeddings; only rank 0's are
written) — sharded evaluation is not done yet.

No torch import at module import: ``torch`` is imported inside the functions
that need it (the CLI imports this module on every ``harness run``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.config import COMPONENT_FLAGS
from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from harness.config import LauncherSettings, RunConfig, RunSpec
    from harness.registry import Registry

__all__ = [
    "config_mapping",
    "in_worker",
    "launch",
    "run_grid_distributed",
    "torchrun_command",
    "write_config",
]

#: Set in the workers' environment by :func:`launch`.
LAUNCHER_ENV = "FACEBENCH_LAUNCHER"


# ------------------------------------------------------------- the config
def config_mapping(cfg: "RunConfig", *, launcher: bool = False) -> dict[str, Any]:
    """``cfg`` as the YAML mapping :meth:`RunConfig.from_mapping` reads back.

    :param launcher: include the launcher settings (the Docker runner passes
        torchrun settings on to the container; torchrun workers get none).
    """
    out: dict[str, Any] = {}
    for flag, (fld, _kind) in COMPONENT_FLAGS.items():
        names = list(getattr(cfg, fld))
        if names:
            out[flag] = names
    if cfg.train:
        out["train"] = [str(d) for d in cfg.train]
    if cfg.eval:
        out["eval"] = [str(d) for d in cfg.eval]
    if cfg.eval_folds:
        out["eval_folds"] = list(cfg.eval_folds)
    if cfg.options:
        out["options"] = {k: dict(v) for k, v in cfg.options.items()}
    out["training"] = dataclasses.asdict(cfg.training)
    out["seed"] = cfg.seed
    out["reports"] = str(cfg.reports)
    out["force"] = bool(cfg.force)
    out["resume"] = bool(cfg.resume)
    if launcher:
        out["launcher"] = {k: v for k, v in dataclasses.asdict(cfg.launcher).items() if k != "docker"}
    return out


def write_config(cfg: "RunConfig", folder: str | Path, *, launcher: bool = False) -> Path:
    """Write :func:`config_mapping` to ``folder/run-<time>-<pid>.yaml``."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.yaml"
    path.write_text(yaml.safe_dump(config_mapping(cfg, launcher=launcher), sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------ parent
def in_worker(environ: "os._Environ[str] | dict[str, str] | None" = None) -> bool:
    """True in a process started by torchrun (its RANK/WORLD_SIZE/LOCAL_RANK are set)."""
    env = os.environ if environ is None else environ
    return all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")) and (
        "TORCHELASTIC_RUN_ID" in env or env.get(LAUNCHER_ENV) == "torchrun"
    )


def torchrun_command(config_path: str | Path, launcher: "LauncherSettings", *,
                     python: str | None = None) -> list[str]:
    """The torchrun command line for ``harness run --config config_path``."""
    cmd = [
        python or sys.executable, "-m", "torch.distributed.run",
        f"--nproc-per-node={launcher.nproc_per_node}",
        f"--nnodes={launcher.nnodes}",
        f"--node-rank={launcher.node_rank}",
    ]
    if launcher.nnodes > 1 or launcher.rdzv_endpoint:
        if not launcher.rdzv_endpoint:
            raise ConfigError("a multi-node run needs --rdzv-endpoint HOST:PORT where the nodes meet")
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={launcher.rdzv_endpoint}", "--rdzv-id=facebench"]
    else:
        cmd += ["--standalone"]
    cmd += ["-m", "harness", "run", "--config", str(config_path)]
    return cmd


def launch(cfg: "RunConfig") -> None:
    """Run the grid of ``cfg`` under torchrun; returns when every worker has exited.

    :raises HarnessError: torch is missing, or torchrun (a worker) failed.
    """
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise HarnessError(
            "distributed training (--nproc-per-node / --nnodes) needs torch: "
            "pip install torch==2.13.0 (CPU) or a CUDA build, then pip install 'facebench[torch]'"
        )
    tmp = Path(tempfile.mkdtemp(prefix="facebench-torchrun-"))
    try:
        path = write_config(cfg, tmp)
        cmd = torchrun_command(path, cfg.launcher)
        env = {**os.environ, LAUNCHER_ENV: "torchrun", "PYTHONUNBUFFERED": "1"}
        L = cfg.launcher
        click.echo(f"torchrun: {L.nproc_per_node} process(es) on node {L.node_rank} of {L.nnodes}", err=True)
        proc = subprocess.Popen(cmd, env=env)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            # torchrun forwards SIGINT/SIGTERM to its workers and waits for them
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        if code != 0:
            raise HarnessError(
                f"torchrun exited with status {code}: a worker failed (its error is printed above; "
                f"each run's log is under {Path(cfg.reports) / 'runs'})"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------- workers
def _init_process_group(cfg: "RunConfig") -> tuple[int, int, str]:
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and cfg.training.device != "cpu"
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return rank, world, backend


def _broadcast(obj: Any) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(obj: Any, world: int) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def run_grid_distributed(runs: list["RunSpec"], cfg: "RunConfig", *, registry: "Registry") -> list:
    """The grid loop of one torchrun worker (see the module docs)."""
    import torch.distributed as dist

    from harness.results import RunDir, RunStore, collect_provenance
    from harness.runner.local import RunOutcome, _logger, grid_id_of
    from harness.tasks import TaskContext, get_task

    rank, world, backend = _init_process_group(cfg)
    main = rank == 0
    progress = main and os.environ.get("FACEBENCH_PROGRESS", "1") != "0"
    grid_id = grid_id_of(runs)
    store = RunStore(cfg.reports)
    scratch = Path(tempfile.mkdtemp(prefix=f"facebench-rank{rank}-")) if not main else None
    outcomes: list[RunOutcome] = []
    try:
        for i, spec in enumerate(runs, 1):
            h = spec.config_hash()
            label = f"[{i}/{len(runs)}] {spec.task}: {spec.slug()}"
            decision: tuple[str, str, bool] | None = None
            results: dict[str, Any] = {}
            if main:
                done = None if cfg.force else store.find_finished(h)
                if done is not None:
                    click.echo(f"{label} — already finished in {done.path} (use --force to run again)", err=True)
                    decision = ("skip", str(done.path), False)
                else:
                    found = store.find_unfinished(h) if cfg.resume and not cfg.force else None
                    run_dir = found or store.create(spec.slug(), h, grid_id=grid_id)
                    decision = ("run", str(run_dir.path), found is not None)
            decision = _broadcast(decision)
            assert decision is not None
            kind, path, resumed = decision
            if kind == "skip":
                outcomes.append(RunOutcome(spec, RunDir(path), "skipped"))
                continue
            if main:
                run_dir = RunDir(path)
                log = _logger(run_dir)
                log(f"{label} — {'resuming in' if resumed else 'writing to'} {run_dir.path} "
                    f"(torchrun: {world} ranks, {backend})")
                components = {k: registry.get(k, n).describe() for k, n in spec.components.items()}
                results = {
                    "task": spec.task,
                    "status": "running",
                    "config_hash": h,
                    "provenance": collect_provenance(spec.to_dict(), components, spec.seed, grid_id=grid_id),
                    "metrics": [],
                }
                results["provenance"]["distributed"] = {"launcher": "torchrun", "world_size": world,
                                                        "backend": backend}
                run_dir.write_results(results)
                cache_dir = Path(cfg.reports) / "cache"
            else:
                assert scratch is not None
                run_dir = RunDir(scratch / f"run{i}")
                run_dir.path.mkdir(parents=True, exist_ok=True)
                cache_dir = scratch / "cache"

                def log(message: str, _r: int = rank) -> None:
                    pass  # rank 0 speaks for the run; errors are gathered below

            ctx = TaskContext(registry=registry, run_dir=run_dir, cache_dir=cache_dir,
                              resume=cfg.resume, progress=progress, log=log)
            t0 = time.perf_counter()
            error: str | None = None
            tb = ""
            try:
                results.update(get_task(spec.task)(spec, ctx))
            except KeyboardInterrupt:
                if main:
                    log(f"{label} — interrupted; run the same command again to resume")
                raise
            except Exception as exc:  # recorded, then all ranks go on together
                error = str(exc) if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
                tb = traceback.format_exc()
            statuses = _gather((error, tb), world)
            if not main:
                continue
            failed = [(r, e, t) for r, (e, t) in enumerate(statuses) if e is not None]
            results["provenance"]["wall_s"] = round(time.perf_counter() - t0, 2)
            if failed:
                r, e, _ = failed[0]
                results["status"] = "failed"
                results["error"] = e if r == 0 else f"rank {r}: {e}"
                with open(run_dir.log_path, "a", encoding="utf-8") as f:
                    for r2, _e, t in failed:
                        f.write(f"--- rank {r2} ---\n{t}")
                run_dir.write_results(results)
                log(f"{label} — FAILED: {results['error']} (log: {run_dir.log_path})")
                outcomes.append(RunOutcome(spec, run_dir, "failed", results["error"]))
                continue
            results["status"] = "finished"
            run_dir.write_results(results)
            headline = next((m for m in results.get("metrics", []) if m["name"] == "accuracy"), None)
            extra = f" accuracy {headline['value']:.4f}" if headline and headline["value"] is not None else ""
            log(f"{label} — finished in {results['provenance']['wall_s']:.1f} s{extra}")
            outcomes.append(RunOutcome(spec, run_dir, "finished"))

        if main:
            from harness.report import render_all

            index = render_all(cfg.reports, extra_template_dirs=registry.template_dirs())
            click.echo(f"report: {Path(index).resolve()}")
        failed_runs = _broadcast([f"{o.spec.slug()}: {o.error}" for o in outcomes if o.status == "failed"]
                                 if main else None)
        dist.barrier()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if failed_runs:
        raise HarnessError(f"{len(failed_runs)} of {len(runs)} run(s) failed: " + "; ".join(failed_runs))
    return outcomes
