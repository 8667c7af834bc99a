"""Distributed runs: launch ``harness run`` under torchrun, and the grid loop
every rank executes.

``harness run --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint
HOST:PORT]`` writes the resolved :class:`~harness.config.RunConfig` to a YAML
file and starts ``python -m torch.distributed.run … -m harness run --config
FILE`` (``harness/__main__.py`` ends a worker with :func:`exit_worker`).
Each worker sees torchrun's ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` and runs :func:`run_grid_distributed`:

* the process group is initialised once per process: NCCL when CUDA is
  available (and the run's device is not ``cpu``), else gloo; each rank
  binds ``cuda:LOCAL_RANK``;
* the run loop is the local runner's (:func:`harness.runner._lifecycle.execute_grid`)
  with a :class:`TorchCollective`: rank 0 finds or creates each run's folder
  and tells the others; rank 0 alone writes ``results.json``, the run log,
  checkpoints and the HTML report.  Other ranks work in a private temporary
  folder that is removed afterwards;
* the engine wraps the model in DDP and shards the data of each global batch
  by rank (see :mod:`facebench_plugins.engines.torch_engine`);
* after each run the ranks exchange their status, so a failure on any rank
  is recorded as the run's failure, and all ranks go on to the next run
  together;
* at the end, the process group is shut down (:func:`shutdown_process_group`:
  collect, barrier, destroy) and the worker leaves through :func:`exit_worker`
  (flush, ``os._exit``), so gloo never aborts a rank at interpreter exit.

Evaluation is sharded: the images of each evaluation set are dealt out
to the ranks (rank *r* takes every ``world``-th from *r*); each rank
decodes, detects, aligns and embeds its share — with its own pool of
``--workers`` processes, by default the node's usable cores divided among
its ranks — and the parts are all-gathered in order, so every rank scores
the same embeddings and rank 0 writes them
(:func:`harness.tasks._pipeline.run_faces`).  The detections are read from
rank 0's cache and written back by rank 0.

No torch import at module import: ``torch`` is imported inside the functions
that need it (the CLI imports this module on every ``harness run``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from harness.errors import ConfigError, HarnessError
from harness.runner._lifecycle import Collective

if TYPE_CHECKING:
    from harness.config import LauncherSettings, RunConfig, RunSpec
    from harness.registry import Registry

__all__ = [
    "TorchCollective",
    "config_mapping",
    "exit_worker",
    "in_worker",
    "launch",
    "run_grid_distributed",
    "shutdown_process_group",
    "torchrun_command",
    "write_config",
]

#: Set in the workers' environment by :func:`launch`.
LAUNCHER_ENV = "FACEBENCH_LAUNCHER"
#: ``--workers`` of the launching command, for the workers (launcher settings do not travel in the YAML).
WORKERS_ENV = "FACEBENCH_EVAL_WORKERS"


# ------------------------------------------------------------- the config
def config_mapping(cfg: "RunConfig", *, launcher: bool = False) -> dict[str, Any]:
    """``cfg`` as the YAML mapping :meth:`RunConfig.from_mapping` reads back
    (:meth:`RunConfig.to_mapping`: training holds only the settings given).

    :param launcher: include the launcher settings (the Docker runner passes
        torchrun settings on to the container; torchrun workers get none).
    """
    return cfg.to_mapping(launcher=launcher)


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
        if cfg.launcher.workers is not None:
            env[WORKERS_ENV] = str(cfg.launcher.workers)
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


class TorchCollective(Collective):
    """The ranks of the torch.distributed process group running one grid.

    Rank 0 decides and writes; the others get its decisions by broadcast and
    work in a private temporary folder (removed by :meth:`close`).
    """

    def __init__(self, rank: int, world: int, backend: str) -> None:
        self.rank, self.world, self.backend = rank, world, backend
        self._scratch: Path | None = None

    def broadcast(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def provenance(self) -> dict[str, Any]:
        return {"launcher": "torchrun", "world_size": self.world, "backend": self.backend}

    def scratch(self, index: int) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"facebench-rank{self.rank}-"))
        path = self._scratch / f"run{index}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def shutdown_process_group(*, wait: bool = True) -> None:
    """Tear the default process group down so that no rank aborts at exit.

    Objects that hold the group (DDP wrappers and their reducers, pending
    work handles) are collected first, then (``wait``) every rank waits for
    the others, then the group is destroyed: gloo otherwise now and then
    aborts a rank at exit ("terminate called without an active exception")
    when one of them is freed during interpreter shutdown.  Pass
    ``wait=False`` when the ranks may be out of step (an unexpected error on
    one of them): a barrier could then wait forever.  A no-op without a group.
    """
    import gc

    import torch.distributed as dist

    gc.collect()
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait:
        try:
            dist.barrier()
        except Exception:  # a rank is gone already (it failed): destroy ours all the same
            pass
    dist.destroy_process_group()


def exit_worker(code: int) -> NoReturn:
    """End a torchrun worker (``python -m harness`` calls it once the command
    has returned in a worker): flush what it wrote, then leave at once.

    ``os._exit`` skips interpreter finalisation and C++ static destructors,
    where gloo's threads can still abort the process after its work is
    done.  Call it only after every result is written (the run folders'
    files are written atomically and closed before this).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _with_workers(cfg: "RunConfig") -> "RunConfig":
    """``cfg`` with the launching command's ``--workers`` (passed in :data:`WORKERS_ENV`)."""
    import dataclasses

    raw = os.environ.get(WORKERS_ENV, "").strip()
    if not raw or cfg.launcher.workers is not None:
        return cfg
    try:
        workers = int(raw)
    except ValueError:
        raise ConfigError(f"{WORKERS_ENV}={raw!r}: expected a number of worker processes") from None
    return dataclasses.replace(cfg, launcher=dataclasses.replace(cfg.launcher, workers=workers))


def run_grid_distributed(runs: list["RunSpec"], cfg: "RunConfig", *, registry: "Registry") -> list:
    """The grid loop of one torchrun worker (see the module docs)."""
    from harness.runner._lifecycle import execute_grid

    cfg = _with_workers(cfg)
    comm = TorchCollective(*_init_process_group(cfg))
    in_step = False
    try:
        outcomes = execute_grid(runs, cfg, registry=registry, collective=comm)
        in_step = True
        return outcomes
    except HarnessError:
        # a failed check or failed runs: every rank raises it at the same point
        in_step = True
        raise
    finally:
        shutdown_process_group(wait=in_step)
        comm.close()
