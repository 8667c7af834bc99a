"""``harness train-landmarker``: train a landmarker that has no published weights (dcnn_cascade)."""

from __future__ import annotations

import importlib
from typing import Any

import click

from harness.errors import ConfigError


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _landmark_sets(registry: Any, train: tuple[str, ...], options: dict, max_faces: int) -> list:
    """The LandmarkSet of every ``--train NAME=PATH`` (``-o NAME.KEY=VALUE`` passed to its reader)."""
    from harness.config import DataRef

    refs = [DataRef.parse(t) for t in train]
    stray = sorted(set(options) - {r.name for r in refs})
    if stray:
        raise ConfigError(f"-o {stray[0]}.… names no --train dataset; training datasets: "
                          f"{', '.join(r.name for r in refs)}")
    sets = []
    for ref in refs:
        spec = registry.get("dataset", ref.name)
        if "landmarks" not in spec.tasks:
            raise ConfigError(f"dataset {ref.name!r} has no landmark annotations; train on one such as "
                              "aflw2000, pts, wflw, cofw or coco_landmarks (`harness list dataset`)")
        if ref.path is None:
            raise ConfigError(f"--train {ref.name} needs a path: --train {ref.name}=PATH")
        data = registry.build("dataset", ref.name, options.get(ref.name), path=ref.path).landmarks()
        if max_faces:
            data.samples = list(data.samples)[:max_faces]
        sets.append(data)
    return sets


@click.command("train-landmarker")
@click.argument("name")
@click.option("--train", "train", multiple=True, required=True, metavar="DATASET=PATH",
              help="Annotated faces to train on (repeatable), e.g. aflw2000=DIR, pts=DIR, wflw=DIR.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write.")
@click.option("-o", "--option", "options", multiple=True, metavar="DATASET.KEY=VALUE",
              help="An option of a training dataset's reader (e.g. -o wflw.annotations=FILE).")
@click.option("--steps", type=int, default=None, help="Optimiser steps per level [3000].")
@click.option("--batch-size", type=int, default=None, help="Faces per step [64].")
@click.option("--lr", type=float, default=None, help="Adam learning rate [0.002].")
@click.option("--refine-levels", type=int, default=None, help="Refinement levels after the global nets [2].")
@click.option("--seed", type=int, default=None, help="Seed of augmentation and initialisation [0].")
@click.option("--threads", type=int, default=None, help="torch threads (0: torch's default) [0].")
@click.option("--max-faces", type=int, default=0, help="Use at most this many faces of each set (0: all).")
def command(name: str, train: tuple[str, ...], out: str, options: tuple[str, ...], max_faces: int,
            **settings: Any) -> None:
    """Train landmarker NAME (e.g. dcnn_cascade) on annotated faces and write its checkpoint.

    Any annotation scheme with the five points (eye centres, nose tip, mouth corners) trains
    it; 68-point sets are mapped to five as docs/landmarks.md states.

    \b
    Example:
      harness train-landmarker dcnn_cascade --train aflw2000=../shared/data/landmarks/aflw2000_prnet \\
          --out dcnn.pt --steps 300
      harness run --landmarker dcnn_cascade -o dcnn_cascade.weights=dcnn.pt \\
          --eval aflw2000=../shared/data/landmarks/aflw2000_prnet
    """
    from harness.config import parse_option_flags
    from harness.registry import get_registry

    registry = get_registry()
    spec = registry.get("landmarker", name)
    trainer, options_cls = spec.meta.get("trainer"), spec.meta.get("train_options")
    if not trainer or not options_cls:
        raise ConfigError(f"landmarker {name!r} is not trainable here (it ships with published weights)")
    if max_faces < 0:
        raise ConfigError(f"--max-faces {max_faces}: expected 0 (all) or a positive count")
    registry.require_available(spec)
    opts = _resolve(options_cls)(**{k: v for k, v in settings.items() if v is not None})
    sets = _landmark_sets(registry, train, parse_option_flags(options), max_faces)
    meta = _resolve(trainer)(sets, out, opts, log=click.echo)
    click.echo(f"wrote {out} ({meta['faces']} faces); evaluate it with "
               f"harness run --landmarker {name} -o {name}.weights={out} --eval DATASET=PATH")
