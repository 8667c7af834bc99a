"""``harness list [KIND] [--json]``: every registered component."""

from __future__ import annotations

import json

import click

from harness.cli._params import KindName

_TITLES = {"backbone": "backbones", "loss": "losses", "recognizer": "recognizers",
           "detector": "detectors", "landmarker": "landmarkers", "liveness": "liveness models",
           "inpainter": "inpainters", "dataset": "datasets", "engine": "engines"}


@click.command("list")
@click.argument("kind", type=KindName(), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {kind: [component, …]}.")
def command(kind: str | None, as_json: bool) -> None:
    """List components (backbone, loss, recognizer, detector, landmarker,
    liveness, inpainter, dataset, engine), available or not.

    \b
    Examples:
      harness list
      harness list backbone
      harness list --json
    """
    from harness.registry import get_registry

    reg = get_registry()
    kinds = [kind] if kind else reg.kinds()
    data = {k: reg.describe(k) for k in kinds}
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False))
    else:
        for k in kinds:
            click.secho(_TITLES.get(k, k), bold=True)
            if not data[k]:
                click.echo("  (none registered)")
            width = max((len(d["name"]) for d in data[k]), default=0)
            for d in data[k]:
                line = f"  {d['name']:<{width}}  {d['framework']:<10} {d['summary']}"
                if not d["available"]:
                    line += click.style(f"  [unavailable: {d['install']}]", fg="yellow")
                click.echo(line)
    for b in reg.broken:
        click.secho(f"warning: plugin {b.name!r} failed to load: {b.error} ({b.hint})", fg="red", err=True)
