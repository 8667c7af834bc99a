"""One run's life, whatever the launcher: find or create its folder, run its
task, record the outcome — and the grid loop that drives it.

:func:`execute_grid` is the only run loop.  The local runner calls it with a
:class:`Collective` (one process: every call is a no-op); the torchrun
workers call it with a collective that broadcasts rank 0's decisions and
gathers every rank's outcome (:class:`harness.runner.torchrun.TorchCollective`).

For each run, :meth:`RunLifecycle.begin` decides (on rank 0) whether it is
already finished (skipped), resumed in its unfinished folder, or started in
a new one, tells the other ranks, writes the ``running`` results and returns
an :class:`ActiveRun` holding the task's context; :meth:`RunLifecycle.finish`
gathers every rank's error, writes ``finished`` or ``failed`` results and logs
one line.  :meth:`RunLifecycle.close` renders the report and raises when a
run failed.

Before any folder is created, :func:`preflight` asks each run's engine to
check the settings it will use (``--device``, ``--init``): an error knowable
before the run begins leaves no failed run behind.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.config import RunConfig, RunSpec
    from harness.registry import Registry
    from harness.results import RunDir
    from harness.tasks import TaskContext

__all__ = ["ActiveRun", "Collective", "RunLifecycle", "RunOutcome", "execute_grid", "grid_id_of", "preflight"]


@dataclass
class RunOutcome:
    spec: "RunSpec"
    run_dir: "RunDir"
    status: str  # finished | skipped | failed
    error: str | None = None


def grid_id_of(runs: list["RunSpec"]) -> str | None:
    """Runs of one invocation share a grid id (stable across reruns)."""
    if len(runs) < 2:
        return None
    return hashlib.sha256(",".join(sorted(r.config_hash() for r in runs)).encode()).hexdigest()[:10]


class Collective:
    """How the processes running one grid agree; this one is a single process.

    ``broadcast(obj)`` returns rank 0's ``obj`` on every rank; ``gather(obj)``
    returns every rank's ``obj`` (index = rank) on every rank.
    """

    rank = 0
    world = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, obj: Any) -> Any:
        return obj

    def gather(self, obj: Any) -> list[Any]:
        return [obj]

    def provenance(self) -> dict[str, Any] | None:
        """What ``results.json`` records about the launch (None: a local run)."""
        return None

    def scratch(self, index: int) -> Path:
        """A private folder for run ``index`` on a rank other than 0."""
        raise NotImplementedError("a single process writes into the run folder itself")


def file_logger(path: Path) -> Callable[[str], None]:
    """``log(message)``: to the console and, time-stamped, to the run's log file."""

    def log(message: str) -> None:
        click.echo(message, err=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")

    return log


def _landmarker_misses_text(protocol: Any) -> str:
    """The summary line's note of a ``--landmarker`` run: faces where it placed no points
    (``protocol.landmarker_misses``, first evaluated set); empty otherwise."""
    miss = protocol.get("landmarker_misses") if isinstance(protocol, dict) else None
    if not isinstance(miss, dict) or not miss.get("of_faces"):
        return ""
    return f"; landmarker missed {miss['n']}/{miss['of_faces']} faces (kept the detector's points)"


def _silent(message: str) -> None:
    """The log of ranks other than 0: rank 0 speaks for the run."""


@dataclass
class ActiveRun:
    """A run between :meth:`RunLifecycle.begin` and :meth:`RunLifecycle.finish`."""

    spec: "RunSpec"
    label: str
    run_dir: "RunDir"
    ctx: "TaskContext"
    results: dict[str, Any] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def log(self) -> Callable[[str], None]:
        return self.ctx.log


def preflight(runs: list["RunSpec"], registry: "Registry") -> None:
    """Check every run's engine settings before any folder is made.

    Each engine that a run uses (the framework of its backbone) checks the
    training settings once, when it can: the device, and the ``init``
    weights of a run that trains its backbone (one with a loss).

    :raises HarnessError: a setting that would fail the run.
    """
    checked: set[tuple[str, bool]] = set()
    for spec in runs:
        backbone = spec.components.get("backbone")
        if backbone is None:
            continue
        framework = getattr(spec, "engine", None) or registry.get("backbone", backbone).framework
        key = (framework, "loss" in spec.components and bool(spec.train))
        if key in checked:
            continue
        checked.add(key)
        engine = registry.build("engine", framework)
        check = getattr(engine, "check_settings", None)
        if callable(check):
            check(spec.training, training=key[1])


class RunLifecycle:
    """begin / finish of each run of one grid (see the module docs)."""

    def __init__(self, runs: list["RunSpec"], cfg: "RunConfig", registry: "Registry",
                 collective: Collective, *, grid_id: str | None = None) -> None:
        from harness.results import RunStore

        self.runs = runs
        self.cfg = cfg
        self.registry = registry
        self.comm = collective
        self.store = RunStore(cfg.reports)
        self.grid_id = grid_id or grid_id_of(runs)  # given: one cell of a grid run as its own job
        self.progress = collective.main and os.environ.get("FACEBENCH_PROGRESS", "1") != "0"
        self.outcomes: list[RunOutcome] = []
        self.started = 0

    # ------------------------------------------------------------ begin
    def _decide(self, spec: "RunSpec", label: str) -> tuple[str, str, bool]:
        """Rank 0: ("skip" | "run", folder, resumed)."""
        h = spec.config_hash()
        done = None if self.cfg.force else self.store.find_finished(h)
        if done is not None:
            click.echo(f"{label} — already finished in {done.path} (use --force to run again)", err=True)
            return "skip", str(done.path), False
        found = self.store.find_unfinished(h) if self.cfg.resume and not self.cfg.force else None
        run_dir = found or self.store.create(spec.slug(), h, grid_id=self.grid_id)
        return "run", str(run_dir.path), found is not None

    def begin(self, spec: "RunSpec") -> ActiveRun | None:
        """Claim the run's folder and write its ``running`` results; None when
        an identical run has finished already (skipped)."""
        from harness.results import RunDir, collect_provenance
        from harness.tasks import TaskContext

        self.started += 1
        index = self.started
        label = f"[{index}/{len(self.runs)}] {spec.task}: {spec.slug()}"
        decision = self.comm.broadcast(self._decide(spec, label) if self.comm.main else None)
        kind, path, resumed = decision
        if kind == "skip":
            self.outcomes.append(RunOutcome(spec, RunDir(path), "skipped"))
            return None
        results: dict[str, Any] = {}
        if self.comm.main:
            run_dir = RunDir(path)
            log = file_logger(run_dir.log_path)
            dist = self.comm.provenance()
            how = f" (torchrun: {dist['world_size']} ranks, {dist['backend']})" if dist else ""
            log(f"{label} — {'resuming in' if resumed else 'writing to'} {run_dir.path}{how}")
            components = {k: self.registry.get(k, n).describe() for k, n in spec.components.items()}
            results = {
                "task": spec.task,
                "status": "running",
                "config_hash": spec.config_hash(),
                "provenance": collect_provenance(spec.to_dict(), components, spec.seed, grid_id=self.grid_id),
                "metrics": [],
            }
            if dist:
                results["provenance"]["distributed"] = dist
            run_dir.write_results(results)
            cache_dir = Path(self.cfg.reports) / "cache"
        else:
            scratch = self.comm.scratch(index)
            run_dir, log, cache_dir = RunDir(scratch), _silent, scratch.parent / "cache"
        ctx = TaskContext(registry=self.registry, run_dir=run_dir, cache_dir=cache_dir,
                          resume=self.cfg.resume, progress=self.progress, log=log,
                          extra={"workers": self.cfg.launcher.workers, "collective": self.comm})
        return ActiveRun(spec, label, run_dir, ctx, results)

    # ----------------------------------------------------------- finish
    def finish(self, run: ActiveRun, results: dict[str, Any] | None, error: BaseException | None) -> RunOutcome | None:
        """Record the run: ``results`` from its task, or the ``error`` it raised
        (on any rank: the ranks' errors are gathered).  Rank 0 writes the
        results and returns the outcome; other ranks return None."""
        mine = None
        if error is not None:
            text = str(error) if isinstance(error, HarnessError) else f"{type(error).__name__}: {error}"
            mine = (text, "".join(traceback.format_exception(type(error), error, error.__traceback__)))
        statuses = self.comm.gather(mine)
        if not self.comm.main:
            return None
        out = run.results
        if results:
            out.update(results)
        out["provenance"]["wall_s"] = round(time.perf_counter() - run.t0, 2)
        failed = [(rank, s) for rank, s in enumerate(statuses) if s is not None]
        if failed:
            rank, (text, _tb) = failed[0]
            out["status"] = "failed"
            out["error"] = text if rank == 0 else f"rank {rank}: {text}"
            with open(run.run_dir.log_path, "a", encoding="utf-8") as f:
                for r, (_text, tb) in failed:
                    f.write(f"--- rank {r} ---\n{tb}" if self.comm.world > 1 else tb)
            run.run_dir.write_results(out)
            run.log(f"{run.label} — FAILED: {out['error']} (log: {run.run_dir.log_path})")
            outcome = RunOutcome(run.spec, run.run_dir, "failed", out["error"])
        else:
            out["status"] = "finished"
            run.run_dir.write_results(out)
            headline = next((m for m in out.get("metrics", []) if m["name"] == "accuracy"), None)
            extra = f" accuracy {headline['value']:.4f}" if headline and headline["value"] is not None else ""
            extra += _landmarker_misses_text(out.get("protocol"))
            run.log(f"{run.label} — finished in {out['provenance']['wall_s']:.1f} s{extra}")
            outcome = RunOutcome(run.spec, run.run_dir, "finished")
        self.outcomes.append(outcome)
        return outcome

    # ------------------------------------------------------------ close
    def close(self) -> list[RunOutcome]:
        """Render the HTML report (rank 0); raise when a run failed (every rank)."""
        if self.comm.main:
            from harness.report import render_all

            index = render_all(self.cfg.reports, extra_template_dirs=self.registry.template_dirs())
            click.echo(f"report: {Path(index).resolve()}")
        failed = self.comm.broadcast(
            [f"{o.spec.slug()}: {o.error}" for o in self.outcomes if o.status == "failed"]
            if self.comm.main else None)
        if failed:
            raise HarnessError(f"{len(failed)} of {len(self.runs)} run(s) failed: " + "; ".join(failed))
        return self.outcomes


def execute_grid(runs: list["RunSpec"], cfg: "RunConfig", *, registry: "Registry",
                 collective: Collective | None = None, grid_id: str | None = None) -> list[RunOutcome]:
    """The run loop: every run of the grid, failures recorded and reported at the end.

    :param grid_id: the grid the runs belong to, when they are part of a larger one (a
        cluster job runs one cell: :mod:`harness.runner.slurm`); None: :func:`grid_id_of` ``runs``.

    :raises HarnessError: a pre-flight check failed (nothing was created), or
        a run failed (after every run was tried and the report rendered).
    """
    from harness.tasks import get_task

    comm = collective or Collective()
    preflight(runs, registry)
    life = RunLifecycle(runs, cfg, registry, comm, grid_id=grid_id)
    for spec in runs:
        run = life.begin(spec)
        if run is None:
            continue
        results, error = None, None
        try:
            results = get_task(spec.task)(spec, run.ctx)
        except KeyboardInterrupt:
            if comm.main:
                run.log(f"{run.label} — interrupted; run the same command again to resume")
            raise
        except Exception as exc:  # recorded; the grid goes on (all ranks together)
            error = exc
        life.finish(run, results, error)
    return life.close()
