"""``harness plugins [--json]``: the loaded plugins and the ones that failed."""

from __future__ import annotations

import dataclasses
import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--traceback", "show_tb", is_flag=True, help="Show tracebacks of broken plugins.")
def command(as_json: bool, show_tb: bool) -> None:
    """Show installed plugins: built-in and third-party, loaded and broken.

    Third-party plugins are packages with an entry point in the group
    ``facebench``.  FACEBENCH_PLUGINS (comma-separated allow-list; empty =
    built-ins only) and FACEBENCH_DISABLE_PLUGINS filter them.
    """
    from harness.registry import get_registry

    reg = get_registry()
    loaded = [dataclasses.asdict(p) for p in reg.plugins]
    broken = [
        {"name": b.name, "dist": b.dist, "error": b.error, "hint": b.hint}
        | ({"traceback": b.traceback} if show_tb else {})
        for b in reg.broken
    ]
    if as_json:
        click.echo(json.dumps({"plugins": loaded, "broken": broken}, indent=2))
        return
    for p in loaded:
        origin = "built-in" if p["builtin"] else f"{p['dist']} {p['version']}".strip()
        click.echo(f"{p['name']:<14} {origin:<24} {p['module']}  hooks: {', '.join(p['hooks'])}")
    for b in broken:
        click.secho(f"{b['name']:<14} BROKEN  {b['error']}\n{'':<15}{b['hint']}", fg="red")
        if show_tb:
            click.echo(b["traceback"])
