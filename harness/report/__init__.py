"""The report renderer: static, offline HTML from ``results.json`` alone.

* :func:`render_run` – one run's page (``reports/runs/<run-id>/index.html``);
* :func:`render_all` – every run page, every grid's comparison page
  (``reports/grids/<grid-id>.html``) and ``reports/index.html``, under a file
  lock so parallel runs never leave a broken index;
* :func:`render_reports` – the same with a choice of runs, returning a
  :class:`RenderSummary`.

Pages are Jinja2 templates (autoescaped) rendered with the dataclasses of
:mod:`harness.report.context`; CSS is inlined and plots are inline SVG drawn
here, so a page opens offline with no CDN.  Nothing in this package imports a
deep-learning framework.
"""

from harness.report._render import (
    RenderSummary,
    ReportError,
    environment,
    render_all,
    render_reports,
    render_run,
    template_dirs,
)

__all__ = [
    "RenderSummary",
    "ReportError",
    "environment",
    "render_all",
    "render_reports",
    "render_run",
    "template_dirs",
]
