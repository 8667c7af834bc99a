"""Run a grid in this process: find or create each run's folder, execute its
task, write ``results.json`` atomically, then rebuild the HTML report.

The loop itself is :func:`harness.runner._lifecycle.execute_grid`, shared
with the torchrun workers; here it runs with the one-process collective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.runner._lifecycle import Collective, RunOutcome, execute_grid, grid_id_of

if TYPE_CHECKING:
    from harness.config import RunConfig, RunSpec
    from harness.registry import Registry

__all__ = ["RunOutcome", "run_grid", "grid_id_of"]


def run_grid(runs: list["RunSpec"], cfg: "RunConfig", *, registry: "Registry") -> list[RunOutcome]:
    """Execute every run of the grid; failures are recorded and reported at the end.

    :raises HarnessError: a check before the first run failed (no folder is
        created), or a run failed (after every run was tried).
    """
    return execute_grid(runs, cfg, registry=registry, collective=Collective())
