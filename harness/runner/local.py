"""Run a grid in this process: find or create each run's folder, execute its
task, write ``results.json`` atomically, then rebuild the HTML report."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.errors import HarnessError
from harness.tasks import TaskContext, get_task

if TYPE_CHECKING:
    from harness.config import RunConfig, RunSpec
    from harness.registry import Registry
    from harness.results import RunDir

__all__ = ["RunOutcome", "run_grid", "grid_id_of"]


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
    import hashlib

    return hashlib.sha256(",".join(sorted(r.config_hash() for r in runs)).encode()).hexdigest()[:10]


def _logger(run_dir: "RunDir"):
    path = run_dir.log_path

    def log(message: str) -> None:
        click.echo(message, err=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")

    return log


def run_grid(runs: list["RunSpec"], cfg: "RunConfig", *, registry: "Registry") -> list[RunOutcome]:
    """Execute every run of the grid; failures are recorded and reported at the end."""
    from harness.results import RunStore, collect_provenance

    store = RunStore(cfg.reports)
    grid_id = grid_id_of(runs)
    progress = os.environ.get("FACEBENCH_PROGRESS", "1") != "0"
    outcomes: list[RunOutcome] = []
    for i, spec in enumerate(runs, 1):
        h = spec.config_hash()
        label = f"[{i}/{len(runs)}] {spec.task}: {spec.slug()}"
        done = None if cfg.force else store.find_finished(h)
        if done is not None:
            click.echo(f"{label} — already finished in {done.path} (use --force to run again)", err=True)
            outcomes.append(RunOutcome(spec, done, "skipped"))
            continue
        run_dir = (store.find_unfinished(h) if cfg.resume and not cfg.force else None)
        resumed = run_dir is not None
        run_dir = run_dir or store.create(spec.slug(), h, grid_id=grid_id)
        log = _logger(run_dir)
        log(f"{label} — {'resuming in' if resumed else 'writing to'} {run_dir.path}")
        components = {kind: registry.get(kind, name).describe() for kind, name in spec.components.items()}
        results = {
            "task": spec.task,
            "status": "running",
            "config_hash": h,
            "provenance": collect_provenance(spec.to_dict(), components, spec.seed, grid_id=grid_id),
            "metrics": [],
        }
        run_dir.write_results(results)
        ctx = TaskContext(
            registry=registry, run_dir=run_dir, cache_dir=Path(cfg.reports) / "cache",
            resume=cfg.resume, progress=progress, log=log,
        )
        t0 = time.perf_counter()
        try:
            results.update(get_task(spec.task)(spec, ctx))
        except KeyboardInterrupt:
            log(f"{label} — interrupted; run the same command again to resume")
            raise
        except Exception as exc:
            results["status"] = "failed"
            results["error"] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, HarnessError) else str(exc)
            results["provenance"]["wall_s"] = round(time.perf_counter() - t0, 2)
            with open(run_dir.log_path, "a", encoding="utf-8") as f:
                f.write(traceback.format_exc())
            run_dir.write_results(results)
            log(f"{label} — FAILED: {results['error']} (log: {run_dir.log_path})")
            outcomes.append(RunOutcome(spec, run_dir, "failed", results["error"]))
            continue
        results["status"] = "finished"
        results["provenance"]["wall_s"] = round(time.perf_counter() - t0, 2)
        run_dir.write_results(results)
        headline = next((m for m in results["metrics"] if m["name"] == "accuracy"), None)
        extra = f" accuracy {headline['value']:.4f}" if headline and headline["value"] is not None else ""
        log(f"{label} — finished in {results['provenance']['wall_s']:.1f} s{extra}")
        outcomes.append(RunOutcome(spec, run_dir, "finished"))

    from harness.report import render_all

    index = render_all(cfg.reports, extra_template_dirs=registry.template_dirs())
    click.echo(f"report: {Path(index).resolve()}")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise HarnessError(
            f"{len(failed)} of {len(outcomes)} run(s) failed: "
            + "; ".join(f"{o.spec.slug()}: {o.error}" for o in failed)
        )
    return outcomes
