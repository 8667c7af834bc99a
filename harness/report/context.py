"""What each report template receives: one documented dataclass per page.

A template is rendered with the fields of its page dataclass as variables
(``run.html`` sees ``title``, ``protocol``, ``sections`` …).  A user or plugin
template that overrides a built-in one gets exactly these variables; the
building blocks (:class:`Table`, :class:`MetricView` …) are shared by all
pages.  Every string here is plain text — the templates escape it — except
fields typed :class:`markupsafe.Markup` (the server-drawn SVG plots), which
are built by :mod:`harness.report._svg` with their own escaping.

Templates (in ``harness/report/templates/``):

=============  ==================  =====================================
template       context             written to
=============  ==================  =====================================
``run.html``   :class:`RunPage`    ``reports/runs/<run-id>/index.html``
``grid.html``  :class:`GridPage`   ``reports/grids/<grid-id>.html``
``index.html`` :class:`IndexPage`  ``reports/index.html``
=============  ==================  =====================================

``base.html`` (layout), ``macros.html`` (tables, cards, key/value lists) and
``style.css`` (inlined into every page) are shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from markupsafe import Markup

__all__ = [
    "Cell",
    "Column",
    "ComponentCard",
    "GridPage",
    "ImageStrip",
    "IndexGroup",
    "IndexPage",
    "IndexRow",
    "KeyValue",
    "Link",
    "MetricView",
    "RunPage",
    "Section",
    "Table",
    "as_template_vars",
]


@dataclass
class Link:
    """A hyperlink; ``href`` is relative to the page it is on."""

    label: str
    href: str


@dataclass
class KeyValue:
    """One row of a key/value list (protocol box, environment, speed …).

    :param key: the label shown on the left.
    :param value: the value as text.
    :param href: makes the value a link (only ``http(s)://`` or relative paths).
    :param mono: show the value in a monospace font (hashes, paths, ids).
    """

    key: str
    value: str
    href: str = ""
    mono: bool = False


@dataclass
class MetricView:
    """A metric ready to show.

    :param name: the stored name (``tar_at_far_1e-4``).
    :param label: the human label (``TAR @ FAR 1e-4``).
    :param value: the raw number (None when undefined); put in ``data-value``.
    :param text: the formatted value (``99.38%``, ``n/a``).
    :param spread: ``± std`` text in the value's unit, or "".
    :param ci: confidence interval text, or "".
    :param direction: ``higher`` or ``lower`` is better.
    :param convention: how it was computed (the rule), or "".
    :param ci_note: how the interval was made (level, method, unit, B, seed), or "".
    """

    name: str
    label: str
    value: float | None
    text: str
    spread: str = ""
    ci: str = ""
    direction: str = "higher"
    convention: str = ""
    ci_note: str = ""


@dataclass
class Column:
    """A table column.

    :param label: header text.
    :param numeric: right-aligned, tabular digits; sorts by number.
    :param best: ``higher``/``lower`` when the column's best value is marked
        (and the first click sorts best first), else "".
    :param title: tooltip on the header (e.g. the metric's convention).
    """

    label: str
    numeric: bool = False
    best: str = ""
    title: str = ""


@dataclass
class Cell:
    """A table cell.

    :param text: what is shown.
    :param value: number used for sorting (``data-value``), None for text cells
        and undefined values (sorted last).
    :param href: makes the cell a link.
    :param best: this is the best value of its column (marked).
    :param note: small text after the value (e.g. ``± 0.45``).
    :param title: tooltip.
    """

    text: str
    value: float | None = None
    href: str = ""
    best: bool = False
    note: str = ""
    title: str = ""


@dataclass
class Table:
    """A table any page can show.

    :param id: HTML id (stable, for tests and links).
    :param caption: shown above the table.
    :param columns: the header.
    :param rows: one list of :class:`Cell` per row, as long as ``columns``.
    :param footer: rows shown under a rule (e.g. mean ± std of the LFW folds).
    :param sortable: headers sort the rows on click (inline script).
    :param note: a sentence under the table (the rule used, why a value is n/a).
    """

    id: str
    caption: str
    columns: list[Column]
    rows: list[list[Cell]]
    footer: list[list[Cell]] = field(default_factory=list)
    sortable: bool = False
    note: str = ""


@dataclass
class ImageStrip:
    """A row of images (inpainting samples); ``src`` paths relative to the page."""

    caption: str
    images: list[Link]


@dataclass
class Section:
    """A titled block of a run page.

    :param id: HTML id (``verification``, ``curves``, ``training`` …).
    :param title: heading.
    :param notes: sentences shown first (warnings, protocol statements).
    :param items: key/value facts.
    :param tables: tables, in order.
    :param plots: SVG figures.
    :param strips: image strips.
    """

    id: str
    title: str
    notes: list[str] = field(default_factory=list)
    items: list[KeyValue] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    plots: list[Markup] = field(default_factory=list)
    strips: list[ImageStrip] = field(default_factory=list)


@dataclass
class ComponentCard:
    """One component of a run, from its spec description in provenance.

    :param kind: ``backbone``, ``loss``, ``detector`` …
    :param name: registry name.
    :param summary: its one-line summary.
    :param paper: citation (``paper_href`` set when it is an http(s) URL).
    :param facts: framework, params, MACs, input size, weights licence …
    """

    kind: str
    name: str
    summary: str
    paper: str
    paper_href: str
    facts: list[KeyValue]


@dataclass
class RunPage:
    """Context of ``run.html``: one run, from its ``results.json``.

    :param title: page title (run name or combination).
    :param run_id: the run folder's name.
    :param name: the user's label for the run, or "".
    :param task: recognition, detection, liveness, inpainting or scores.
    :param status: running, finished or failed.
    :param created: when the run was made (UTC).
    :param combination: the components as ``resnet20 · arcface``.
    :param synthetic: the data is synthetic (a banner says so).
    :param notes: further warnings shown under the header.
    :param protocol: the protocol box: dataset and pairs, detector, alignment …
    :param headline: the few numbers shown large at the top.
    :param sections: verification, curves, training, detection, liveness,
        inpainting, all metrics — only those the results hold.
    :param components: one card per component.
    :param environment: versions, git commit, hardware, seed.
    :param config_json: the run's config as indented JSON.
    :param index_href: link back to ``reports/index.html``.
    :param grid_href: link to the grid's comparison page, or "".
    :param generated: when the page was rendered (UTC).
    """

    title: str
    run_id: str
    name: str
    task: str
    status: str
    created: str
    combination: str
    synthetic: bool
    notes: list[str]
    protocol: list[KeyValue]
    headline: list[MetricView]
    sections: list[Section]
    components: list[ComponentCard]
    environment: list[KeyValue]
    config_json: str
    index_href: str
    grid_href: str
    generated: str


@dataclass
class GridPage:
    """Context of ``grid.html``: the runs of one grid side by side.

    :param title: page title.
    :param grid_id: the shared ``provenance.grid_id``.
    :param protocol: protocol facts shared by every run of the grid.
    :param synthetic: some run used synthetic data.
    :param table: one row per combination, one column per headline metric,
        best values marked, sortable.
    :param plots: overlaid curves (ROC of every run; training loss when trained).
    :param index_href: link back to the index.
    :param generated: when the page was rendered (UTC).
    :param sections: further titled blocks (e.g. the ``.bin`` suite's model x set table).
    """

    title: str
    grid_id: str
    protocol: list[KeyValue]
    synthetic: bool
    table: Table
    plots: list[Markup]
    index_href: str
    generated: str
    sections: list[Section] = field(default_factory=list)


@dataclass
class IndexRow:
    """One run in the index.

    :param run_id: folder name.
    :param href: link to its run page ("" when it has no page).
    :param title: name or combination.
    :param status: running, finished, failed, or ``error`` (unreadable results).
    :param created: UTC time.
    :param components: ``kind: name`` texts.
    :param component_names: names used by the component filter.
    :param headline: up to three headline metrics.
    :param grid: link to its grid's comparison page, or None.
    :param problem: why the run could not be read, or "".
    """

    run_id: str
    href: str
    title: str
    status: str
    created: str
    components: list[str]
    component_names: list[str]
    headline: list[MetricView]
    grid: Link | None
    problem: str = ""


@dataclass
class IndexGroup:
    """Runs of one task and protocol (dataset), newest first."""

    id: str
    task: str
    protocol: str
    rows: list[IndexRow]


@dataclass
class IndexPage:
    """Context of ``index.html``: every run.

    :param title: page title.
    :param groups: runs grouped by task and protocol, newest group first.
    :param components: every component name, for the filter.
    :param grids: links to the comparison pages.
    :param run_count: number of runs listed.
    :param generated: when the page was rendered (UTC).
    """

    title: str
    groups: list[IndexGroup]
    components: list[str]
    grids: list[Link]
    run_count: int
    generated: str


def as_template_vars(page: Any) -> dict[str, Any]:
    """The template variables of a page dataclass: its fields, shallowly."""
    return {f.name: getattr(page, f.name) for f in fields(page)}
