"""``harness runs [--reports DIR] [--json]``: list the runs in a reports folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _summaries(reports_dir: Path) -> list[dict[str, Any]]:
    from harness.report._build import combination, headline_names
    from harness.results import ResultsError, RunStore

    out = []
    for run in RunStore(reports_dir).runs():
        info = run.info
        item: dict[str, Any] = {
            "run_id": run.run_id,
            "path": str(run.path),
            "status": "running",
            "task": None,
            "name": None,
            "components": {},
            "config_hash": info.get("config_hash"),
            "grid_id": info.get("grid_id"),
            "created": info.get("created"),
            "metrics": {},
            "headline": [],
            "page": str(run.page_path) if run.page_path.exists() else None,
        }
        if run.has_results:
            try:
                res = run.read_results()
            except ResultsError as exc:
                item["status"] = "corrupt"
                item["error"] = str(exc)
            else:
                metrics = [m for m in res.get("metrics", []) if isinstance(m, dict) and "name" in m]
                item.update(
                    status=res.get("status"),
                    task=res.get("task"),
                    name=res.get("name"),
                    components=combination(res),
                    grid_id=(res.get("provenance") or {}).get("grid_id") or item["grid_id"],
                    metrics={str(m["name"]): m.get("value") for m in metrics},
                    headline=headline_names(metrics, limit=3, defined_only=True),
                )
        out.append(item)
    return out


@click.command("runs")
@click.option("--reports", "reports_dir", default="reports", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The reports folder.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per run.")
def command(reports_dir: Path, as_json: bool) -> None:
    """List runs, newest first: id, status, task, components, headline metrics.

    \b
    Examples:
      harness runs
      harness runs --reports /data/reports --json
    """
    from harness.report._format import fmt_metric, metric_label

    runs = _summaries(reports_dir)
    if as_json:
        click.echo(json.dumps(runs, indent=2))
        return
    if not runs:
        click.echo(f"no runs in {reports_dir / 'runs'} (start one with `harness run`)")
        return
    width = max(len(r["run_id"]) for r in runs)
    colours = {"finished": "green", "failed": "red", "corrupt": "red", "running": "blue"}
    for r in runs:
        status = click.style(f"{r['status'] or '?':<9}", fg=colours.get(str(r["status"])))
        comps = " · ".join(r["components"].values()) or "-"
        head = ", ".join(f"{metric_label(n)} {fmt_metric(n, r['metrics'][n])}" for n in r["headline"])
        click.echo(f"{r['run_id']:<{width}}  {status} {r['task'] or '-':<12} {comps}" + (f"  [{head}]" if head else ""))
        if r.get("error"):
            click.secho(f"    {r['error']}", fg="red")
