"""Grids on a cluster: ``harness run … --launcher slurm`` submits each cell of
the grid as one job through submitit; ``--launcher submitit-local`` runs the
same jobs as processes on this machine (submitit's ``LocalExecutor``).

One design for both (docs/scale.md):

* the submitting process expands the grid, leaves out the cells whose
  identical run has finished already (unless ``--force``), and submits one
  job per remaining cell — on Slurm one array of jobs through ``sbatch``,
  with the resources of :class:`harness.config.SlurmSettings`
  (``--slurm-partition``, ``--slurm-gpus-per-node``, ``--slurm-time`` …);
* each job runs :func:`run_cell`: the same configuration read back
  (:meth:`RunConfig.from_mapping`), expanded by the job's own registry, the
  one cell picked by its config hash and run by the one run loop
  (:func:`harness.runner._lifecycle.execute_grid`) under the grid's id, in the
  submitting process's working directory — so relative data paths and the
  config hash are those of a local run.  The cell writes its run folder into
  the shared reports folder (atomic writes, run folders claimed by
  ``mkdir``) and renders the index under the reports lock;
* with ``--log mlflow`` each job records its cell in MLflow when the cell
  ends (finished or failed: params, metrics, ``results.json`` and the run page
  as artifacts, :func:`harness.run_loggers.record_grid`, as a grid run in one
  process records its runs), into the submitting process's tracking store and
  experiment (:func:`harness.run_loggers.job_tracking`, which creates the
  experiment once before the jobs start); cells skipped as already finished
  are recorded by the submitting process, if they were not yet;
* the submitting process waits, printing one line per finished job and a
  one-line error with the tail of a failed job's stderr, then rebuilds the
  index and grid pages once every cell is in; ``--no-wait`` prints the job
  ids and the log folder instead and returns (each job still rebuilds the
  index when its cell is in).

The submitting machine needs no GPU: the jobs check ``--device`` and
``--init`` where they run.  No submitit import at module import.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import click

from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from harness.config import RunConfig, RunSpec, SlurmSettings
    from harness.registry import Registry

__all__ = [
    "CellJob",
    "cell_payload",
    "failure_line",
    "local_parameters",
    "log_folder",
    "make_executor",
    "run_cell",
    "sbatch_parameters",
    "submit_grid",
    "wait_for",
]

#: The extra that installs submitit.
INSTALL = "pip install 'facebench[slurm]'"
#: Seconds between two looks at the jobs (Slurm: submitit asks sacct at most this often anyway).
POLL_S = {"slurm": 15.0, "submitit-local": 0.5}
#: Lines of a failed job's stderr carried in its one-line error.
TAIL_LINES = 3
#: Characters of that tail at most.
TAIL_CHARS = 400


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise HarnessError(f"--launcher slurm / submitit-local submits jobs through submitit: {INSTALL}") from None
    return submitit


# ------------------------------------------------------------- parameters
def sbatch_parameters(settings: "SlurmSettings", *, job_name: str = "facebench") -> dict[str, Any]:
    """The keyword arguments of ``submitit.SlurmExecutor.update_parameters`` (sbatch's names)."""
    params: dict[str, Any] = {"job_name": job_name, "time": settings.minutes, "nodes": 1, "ntasks_per_node": 1}
    optional = {"partition": settings.partition, "gpus_per_node": settings.gpus_per_node or None,
                "cpus_per_task": settings.cpus_per_task, "mem": settings.mem,
                "setup": list(settings.setup) or None, "additional_parameters": settings.sbatch_extra() or None}
    params.update({k: v for k, v in optional.items() if v is not None})
    return params


def local_parameters(settings: "SlurmSettings") -> dict[str, Any]:
    """The keyword arguments of ``submitit.LocalExecutor.update_parameters``: the time limit, the
    GPUs (each local job sees the first ``gpus_per_node`` devices through ``CUDA_VISIBLE_DEVICES``;
    0: none, as on Slurm) and the setup lines."""
    params: dict[str, Any] = {"timeout_min": settings.minutes, "gpus_per_node": settings.gpus_per_node}
    if settings.setup:
        params["setup"] = list(settings.setup)
    return params


def log_folder(cfg: "RunConfig") -> Path:
    """Where submitit keeps the jobs' pickles and logs: ``launcher.slurm.log_dir`` or ``<reports>/slurm``."""
    return Path(cfg.launcher.slurm.log_dir or Path(cfg.reports) / "slurm").absolute()


def make_executor(cluster: str, settings: "SlurmSettings", folder: str | Path) -> Any:
    """A submitit executor for ``cluster`` (``slurm`` or ``submitit-local``) with ``settings``;
    each job's files go to ``folder/<job id>``.

    :raises HarnessError: submitit is missing, or ``slurm`` where no Slurm is installed.
    :raises ConfigError: submitit refuses a parameter.
    """
    submitit = _submitit()
    jobs = Path(folder) / "%j"
    if cluster == "slurm":
        try:
            executor = submitit.SlurmExecutor(folder=jobs)
        except RuntimeError:
            raise HarnessError(
                "--launcher slurm: no Slurm on this machine (srun is not on PATH); submit from a login node "
                "of the cluster, or use --launcher submitit-local to run the cells as jobs here") from None
        params = sbatch_parameters(settings)
    elif cluster == "submitit-local":
        executor, params = submitit.LocalExecutor(folder=jobs), local_parameters(settings)
    else:
        raise ConfigError(f"launcher.cluster={cluster!r}: expected slurm or submitit-local")
    try:
        executor.update_parameters(**params)
    except ValueError as exc:
        raise ConfigError(f"{cluster}: submitit refused the job parameters ({_one_line(str(exc))}); "
                          "check the --slurm-* settings") from None
    return executor


# ---------------------------------------------------------------- the job
def cell_payload(cfg: "RunConfig", spec: "RunSpec", grid_id: str | None,
                 tracking: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a job needs to run one cell: the grid's configuration (launcher
    settings other than ``workers`` left out, so the job runs in its own
    process), the cell's config hash and slug, the grid id, the working
    directory and the MLflow environment it records into (``tracking``:
    :func:`harness.run_loggers.job_tracking`; empty without ``--log mlflow``)."""
    mapping = cfg.to_mapping(launcher=True)
    workers = mapping.pop("launcher", {}).get("workers")
    if workers is not None:
        mapping["launcher"] = {"workers": workers}
    return {"config": mapping, "cell": spec.config_hash(), "slug": spec.slug(), "grid_id": grid_id,
            "cwd": os.getcwd(), "tracking": dict(tracking or {})}


def run_cell(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The body of one job: run the cell ``payload["cell"]`` of the grid (see the module docs).

    :returns: ``status`` (finished / skipped), ``run_dir``, ``wall_s`` and ``accuracy`` where recorded.
    :raises HarnessError: the cell failed (recorded in its run folder first) or is not in the grid.
    """
    from harness.config import RunConfig
    from harness.registry import get_registry
    from harness.run_loggers import record_grid
    from harness.runner._lifecycle import execute_grid

    os.chdir(payload["cwd"])
    os.environ["FACEBENCH_PROGRESS"] = "0"  # one log file per job: no progress bars in it
    os.environ.update(payload.get("tracking") or {})  # --log mlflow: the submitting process's store
    cfg = RunConfig.from_mapping(payload["config"], source=f"the grid of cell {payload['slug']}")
    registry = get_registry()
    cell = [r for r in cfg.expand(registry) if r.config_hash() == payload["cell"]]
    if not cell:
        raise ConfigError(
            f"cell {payload['slug']} ({payload['cell']}) is not in the grid as this job expands it: facebench "
            "or its plugins differ between the submitting machine and the job's; install the same versions")
    try:
        (outcome,) = execute_grid(cell[:1], cfg, registry=registry, grid_id=payload["grid_id"])
    finally:  # --log mlflow: the cell's run and page, finished or failed, as a grid in one process does
        record_grid(cfg.reports, [payload["cell"]], cfg.training.log)
    out: dict[str, Any] = {"status": outcome.status, "run_dir": str(outcome.run_dir.path)}
    try:
        results = outcome.run_dir.read_results()
    except HarnessError:
        return out
    out["wall_s"] = (results.get("provenance") or {}).get("wall_s")
    accuracy = next((m.get("value") for m in results.get("metrics", []) if m.get("name") == "accuracy"), None)
    if accuracy is not None:
        out["accuracy"] = accuracy
    return out


# ------------------------------------------------------------ submitting
@dataclass
class CellJob:
    """One submitted cell: its :class:`RunSpec`, the submitit job, and (once done) what it returned."""

    spec: "RunSpec"
    job: Any
    result: dict[str, Any] | None = None
    error: str | None = None


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


#: Lines of a Python traceback that name no error: its header and chained-exception notes
#: (its frames, source lines and carets are indented).
_TRACEBACK_NOISE = ("Traceback (most recent call last):", "During handling of the above exception",
                    "The above exception was the direct cause")
#: submitit's own log lines ("submitit ERROR (time) - Submitted job triggered an exception").
_SUBMITIT_LOG = re.compile(r"submitit (DEBUG|INFO|WARNING|ERROR|CRITICAL) \(")


def _tail(text: str) -> str:
    """The last :data:`TAIL_LINES` lines of ``text`` that say something (traceback frames,
    submitit's own log lines and rules left out, so the error line itself is there), on one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln[0].isspace()
             and not ln.startswith(_TRACEBACK_NOISE) and not _SUBMITIT_LOG.match(ln) and set(ln.strip()) != {"-"}]
    tail = " | ".join(lines[-TAIL_LINES:])
    return tail if len(tail) <= TAIL_CHARS else "…" + tail[-TAIL_CHARS:]


def failure_line(cell: CellJob) -> str | None:
    """None when the job ran its cell; else one line: the job, the cell, its stderr's tail, its log."""
    try:
        exc = cell.job.exception()
    except Exception as err:  # noqa: BLE001 - the scheduler's view of a vanished job
        exc = err
    if exc is None:
        cell.result = cell.job.result()
        return None
    try:
        stderr = cell.job.stderr() or ""
    except OSError:
        stderr = ""
    tail = _tail(stderr) or _tail(str(exc)) or type(exc).__name__
    log = getattr(getattr(cell.job, "paths", None), "stderr", None)
    cell.error = f"job {cell.job.job_id} ({cell.spec.slug()}) failed: {tail}" + (f" (log: {log})" if log else "")
    return cell.error


def _done_line(cell: CellJob) -> str:
    res = cell.result or {}
    parts = [f"job {cell.job.job_id} {cell.spec.slug()}: {res.get('status', 'finished')}"]
    if res.get("wall_s") is not None:
        parts.append(f" in {res['wall_s']:.1f} s")
    if res.get("accuracy") is not None:
        parts.append(f", accuracy {res['accuracy']:.4f}")
    return "".join(parts) + (f" ({res['run_dir']})" if res.get("run_dir") else "")


def wait_for(cells: list[CellJob], *, poll_s: float, cluster: str = "slurm") -> list[str]:
    """Wait for every job, one progress line each as it finishes (on stderr).

    :returns: the failure lines (:func:`failure_line`) in the order the jobs finished.
    """
    pending, failures, n = list(cells), [], len(cells)
    try:
        while pending:
            for cell in [c for c in pending if c.job.done()]:
                pending.remove(cell)
                failure = failure_line(cell)
                if failure:
                    failures.append(failure)
                click.echo(f"[{n - len(pending)}/{n}] {failure or _done_line(cell)}", err=True)
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        ids = " ".join(str(c.job.job_id) for c in pending)
        cancel = f"scancel {ids}" if cluster == "slurm" else f"kill {ids}"
        click.echo(f"interrupted: {len(pending)} job(s) still run and each rebuilds the index when its cell is "
                   f"in; to stop them: {cancel}", err=True)
        raise
    return failures


def _cells_to_submit(runs: list["RunSpec"], cfg: "RunConfig") -> list["RunSpec"]:
    """The cells without a finished identical run (all of them with ``--force``)."""
    from harness.results import RunStore

    store = RunStore(cfg.reports)
    store.check_writable()
    todo = []
    for spec in runs:
        done = None if cfg.force else store.find_finished(spec.config_hash())
        if done is not None:
            click.echo(f"{spec.slug()} — already finished in {done.path} (use --force to run again)", err=True)
        else:
            todo.append(spec)
    return todo


def _render(cfg: "RunConfig", registry: "Registry") -> None:
    from harness.report import render_all

    index = render_all(cfg.reports, extra_template_dirs=registry.template_dirs())
    click.echo(f"report: {Path(index).resolve()}")


def submit_grid(runs: list["RunSpec"], cfg: "RunConfig", *, registry: "Registry",
                poll_s: float | None = None) -> list[CellJob]:
    """Submit every cell of the grid as one job, then (unless ``--no-wait``) wait and rebuild the report.

    :raises HarnessError: submitit or Slurm is missing, or a job failed (after every job ended and the
        report was rebuilt): one line per failed job, with its stderr's tail.
    """
    from harness.run_loggers import job_tracking, record_grid
    from harness.runner._lifecycle import grid_id_of

    cluster, settings = cfg.launcher.cluster, cfg.launcher.slurm
    if cluster is None:
        raise ConfigError("submit_grid needs launcher.cluster: slurm or submitit-local (--launcher)")
    todo = _cells_to_submit(runs, cfg)
    submitted = {spec.config_hash() for spec in todo}
    done = [spec.config_hash() for spec in runs if spec.config_hash() not in submitted]
    if done:  # --log mlflow: finished cells not recorded yet are recorded here, as a local rerun would
        record_grid(cfg.reports, done, cfg.training.log)
    if not todo:
        _render(cfg, registry)
        return []
    folder = log_folder(cfg)
    executor = make_executor(cluster, settings, folder)
    grid_id = grid_id_of(runs)
    tracking = job_tracking(cfg.reports, cfg.training.log)
    jobs = executor.map_array(run_cell, [cell_payload(cfg, spec, grid_id, tracking) for spec in todo])
    cells = [CellJob(spec, job) for spec, job in zip(todo, jobs)]
    click.echo(f"{cluster}: submitted {len(cells)} job(s), one per cell (logs: {folder})", err=True)
    if not settings.wait:
        for cell in cells:
            click.echo(f"job {cell.job.job_id}\t{cell.spec.slug()}\t{cell.spec.config_hash()}")
        click.echo(f"logs: {folder}  (each job rebuilds {Path(cfg.reports) / 'index.html'} when its cell is in)")
        return cells
    failures = wait_for(cells, poll_s=POLL_S[cluster] if poll_s is None else poll_s, cluster=cluster)
    _render(cfg, registry)
    if failures:
        raise HarnessError(f"{len(failures)} of {len(cells)} job(s) failed: " + "; ".join(failures))
    return cells
