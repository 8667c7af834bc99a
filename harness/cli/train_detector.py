"""``harness train-detector``: train a detector that has no public weights (cascade_cnn)."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from harness.errors import ConfigError


@click.command("train-detector")
@click.argument("name")
@click.option("--data", "data", multiple=True, required=True, metavar="KEY=PATH",
              help="wider=IMAGES_DIR, and labels=LABELS_TXT (labelv2 format) unless "
                   "IMAGES_DIR/../labelv2_val.txt exists.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Where the trained weights are written.")
@click.option("--steps", default=2000, show_default=True, help="Optimiser steps per net.")
@click.option("--min-face", default=24, show_default=True, help="Smallest face (pixels) mined.")
def command(name: str, data: tuple[str, ...], output: str, steps: int, min_face: int) -> None:
    """Train detector NAME (e.g. cascade_cnn) on WIDER-style data and write its weights.

    \b
    Example:
      harness train-detector cascade_cnn --data wider=../shared/data/wider/images_416 -o cascade.pt
      harness run --detector cascade_cnn -o cascade_cnn.weights=cascade.pt --eval wider=../shared/data/wider
    """
    from harness.registry import get_registry

    spec = get_registry().get("detector", name)
    trainer = spec.meta.get("trainer")
    if not trainer:
        raise ConfigError(f"detector {name!r} is not trainable here (it ships with published weights)")
    values = {}
    for d in data:
        key, sep, value = d.partition("=")
        if not sep or not value:
            raise ConfigError(f"--data {d!r} is not KEY=PATH (e.g. --data wider=../shared/data/wider/images_416)")
        values[key.strip()] = value.strip()
    if "wider" not in values:
        raise ConfigError("--data wider=IMAGES_DIR is required (and labels=LABELS_TXT unless "
                          "IMAGES_DIR/../labelv2_val.txt exists)")
    images = Path(values["wider"])
    labels = Path(values.get("labels", images.parent / "labelv2_val.txt"))
    for p, what in ((images, "images folder"), (labels, "labels file")):
        if not p.exists():
            raise ConfigError(f"{what} {p} does not exist")
    module, _, attr = trainer.partition(":")
    train = getattr(importlib.import_module(module), attr)
    meta = train(images, labels, output, steps=steps, min_face=min_face, log=click.echo)
    click.echo(f"wrote {output}; use it with -o {name}.weights={output}  ({meta['samples']})")
