"""Tasks: what a run does once its components are chosen.

Each task is a function ``run(spec: RunSpec, ctx: TaskContext) -> dict``
returning the task's part of ``results.json`` (``protocol``, ``metrics``,
``sections``, ``curves``).  The runner adds provenance and writes the file.
Tasks are imported only when a run needs them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from harness.config import RunSpec
    from harness.registry import Registry
    from harness.results import RunDir

__all__ = ["TASKS", "TaskContext", "choose_detector", "default_component", "get_task"]

TASKS: dict[str, str] = {
    "recognition": "harness.tasks.recognition:run",
    "detection": "harness.tasks.detection:run",
    "landmarks": "harness.tasks.landmarks:run",
    "tracking": "harness.tasks.tracking:run",
    "liveness": "harness.tasks.liveness:run",
    "inpainting": "harness.tasks.inpainting:run",
}


@dataclass
class TaskContext:
    """What a task gets besides its :class:`~harness.config.RunSpec`.

    :param registry: where components are built.
    :param run_dir: this run's folder (checkpoints, logs, arrays).
    :param cache_dir: shared cache of detections and embeddings across runs.
    :param resume: continue an interrupted run from its last checkpoint.
    :param progress: show progress bars.
    :param log: ``log(message)`` writes to the console and the run's log.
    """

    registry: "Registry"
    run_dir: "RunDir"
    cache_dir: Path
    resume: bool = True
    progress: bool = True
    log: Callable[[str], None] = print
    extra: dict[str, Any] = field(default_factory=dict)


def get_task(name: str) -> Callable[["RunSpec", TaskContext], dict]:
    try:
        target = TASKS[name]
    except KeyError:
        raise HarnessError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}") from None
    module, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise HarnessError(
                f"the {name} task is not part of this facebench version yet ({module} is missing)"
            ) from None
        raise
    return getattr(mod, attr)


def default_component(registry: "Registry", kind: str, task: str) -> str:
    """The ``kind`` a ``task`` run uses when the user names none.

    Declared as data by the plugin: the one spec whose ``meta["default_for"]``
    lists ``task``.  None or several (a third-party plugin claiming it too)
    ask the user to choose.
    """
    names = [s.name for s in registry.specs(kind) if task in tuple(s.meta.get("default_for") or ())]
    if len(names) == 1:
        return names[0]
    if not names:
        raise ConfigError(f"a {task} run needs --{kind} NAME: no installed {kind} is declared the default for "
                          f"{task} runs (see `harness list {kind}`)")
    raise ConfigError(f"a {task} run needs --{kind} NAME: {', '.join(sorted(names))} each declare themselves "
                      f"the default for {task} runs; choose one")


def choose_detector(registry: "Registry", components: Any, task: str, model_spec: Any = None) -> str:
    """The detector of a run: ``--detector``, else the one the model's spec names
    (``meta["detector"]``: the detector its published numbers used), else the task's default."""
    return (components.get("detector") or (model_spec.meta.get("detector") if model_spec is not None else None)
            or default_component(registry, "detector", task))
