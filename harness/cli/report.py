"""``harness report [RUN...] [--reports DIR] [--open]``: rebuild the HTML reports.

Pages are rendered from each run's ``results.json`` alone, so this needs no
GPU and no deep-learning framework.
"""

from __future__ import annotations

from pathlib import Path

import click


def _plugin_template_dirs() -> list[Path]:
    """Template folders contributed by plugins (``register_template_dirs``)."""
    from harness.registry import get_registry

    return get_registry().template_dirs()


@click.command("report")
@click.argument("runs", nargs=-1)
@click.option("--reports", "reports_dir", default="reports", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="The reports folder.")
@click.option("--templates", "templates", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of template overrides (searched after FACEBENCH_TEMPLATES and "
                   "<reports>/_templates, before the built-ins). Repeatable.")
@click.option("--open", "open_browser", is_flag=True, help="Open the index in a web browser.")
def command(runs: tuple[str, ...], reports_dir: Path, templates: tuple[Path, ...], open_browser: bool) -> None:
    """Re-render run pages, grid comparison pages and the index from results.json.

    RUN is a run id, a unique prefix of one, or a run folder; with none, every
    run page is rebuilt.  The grid pages and reports/index.html are always rebuilt.

    \b
    Examples:
      harness report
      harness report 20250101-120000-resnet20-arcface --open
      harness report --reports /data/reports --templates my_templates/
    """
    from harness.errors import HarnessError
    from harness.report import render_reports

    runs_dir = reports_dir / "runs"
    if not runs_dir.is_dir():
        raise HarnessError(
            f"{reports_dir} holds no runs (no {runs_dir} folder): pass --reports with the folder "
            "`harness run` wrote to, or start a run first"
        )
    extra = [*templates, *_plugin_template_dirs()]
    summary = render_reports(reports_dir, runs=list(runs) if runs else None, extra_template_dirs=extra, force=True)
    click.echo(f"rendered {len(summary.run_pages)} run page(s), {len(summary.grid_pages)} grid page(s)")
    for run_id, problem in summary.problems:
        click.secho(f"warning: run {run_id} skipped: {problem}", fg="yellow", err=True)
    url = summary.index.resolve().as_uri()
    click.echo(f"index: {url}")
    if open_browser:
        import webbrowser

        if not webbrowser.open(url):
            click.echo("no web browser found; open the URL above yourself", err=True)
