"""1:N identification on the grid page: the models of a grid compared on closed-set rank-k and
open-set FNIR @ FPIR, with their CMCs and open-set DETs on shared axes.

Reads only ``results.json`` (``sections.identification``, ``sections.open_set``,
``curves.cmc``, ``curves.open_set_det``, written by :mod:`harness.tasks.identification`):

* :func:`identification_grid_section`: one row per run that searched — the model, the data, the
  gallery, rank-1 / rank-5 (mean ± std over trials) and FNIR at FPIR 1e-3, 1e-2, 1e-1 (``n/a``
  where the target is below 1 / non-mated searches); best of each column marked;
* :func:`identification_grid_plots`: every run's CMC on one chart, every run's DET on another.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from markupsafe import Markup

from harness._values import finite_float
from harness.report import _format as F
from harness.report._svg import Series, line_chart
from harness.report.context import Cell, Column, Section, Table

__all__ = ["identification_grid_plots", "identification_grid_section"]

FPIR_TARGETS = (1e-3, 1e-2, 1e-1)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _searched(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    return [(rid, r) for rid, r in runs
            if _dict(r.get("sections")).get("identification") or _dict(r.get("sections")).get("open_set")]


def _rank_cell(ident: Mapping[str, Any], k: int) -> Cell:
    row = next((_dict(x) for x in _list(ident.get("rank")) if _dict(x).get("k") == k), {})
    v, sd = finite_float(row.get("mean")), finite_float(row.get("std"))
    if v is None:
        return Cell(F.NA)
    return Cell(F.fmt_percent(v), v, note=f"± {F.fmt_percent(sd)}" if sd else "")


def _fnir_cell(open_set: Mapping[str, Any], target: float) -> Cell:
    row = next((_dict(x) for x in _list(open_set.get("table"))
                if finite_float(_dict(x).get("fpir_target")) == target), {})
    v = finite_float(row.get("fnir"))
    if not row.get("defined", True) or v is None:
        return Cell(F.NA, title="FPIR target below 1 / non-mated searches: not measurable" if row else "not run")
    sd = finite_float(row.get("fnir_std"))
    return Cell(F.fmt_percent(v), v, note=f"± {F.fmt_percent(sd)}" if sd else "")


def _mark_best(rows: list[list[Cell]], col: int, direction: str) -> None:
    vals = [r[col].value for r in rows if r[col].value is not None]
    if len(vals) < 2:
        return
    best = max(vals) if direction == "higher" else min(vals)
    for r in rows:
        if r[col].value == best:
            r[col].best = True


def identification_grid_section(runs: Sequence[tuple[str, Mapping[str, Any]]], run_href: Callable[[str], str],
                                label: Callable[[Mapping[str, Any]], str]) -> Section | None:
    """The comparison table of the runs that searched (None when no run did)."""
    searched = _searched(runs)
    if not searched:
        return None
    rows = []
    for rid, r in searched:
        sec = _dict(r.get("sections"))
        ident, open_set = _dict(sec.get("identification")), _dict(sec.get("open_set"))
        base = ident or open_set
        proto = _dict(r.get("protocol"))
        row = [Cell(str(r.get("name") or label(r)), href=run_href(rid), title=rid),
               Cell(str(proto.get("dataset") or "—")),
               Cell(F.fmt_count(base.get("gallery_identities")), finite_float(base.get("gallery_identities"))),
               Cell(F.fmt_count(base.get("probes")), finite_float(base.get("probes"))),
               _rank_cell(ident, 1), _rank_cell(ident, 5)]
        row += [_fnir_cell(open_set, t) for t in FPIR_TARGETS]
        rows.append(row)
    columns = [Column("Run"), Column("Data"), Column("Gallery identities", numeric=True),
               Column("Probes", numeric=True), Column("Rank-1", numeric=True, best="higher"),
               Column("Rank-5", numeric=True, best="higher")]
    columns += [Column(f"FNIR @ FPIR {t:.0e}".replace("e-0", "e-"), numeric=True, best="lower",
                       title="open set: share of mated searches not returned within the candidate list at the "
                             "threshold with FPIR <= target") for t in FPIR_TARGETS]
    for col, direction in ((4, "higher"), (5, "higher"), (6, "lower"), (7, "lower"), (8, "lower")):
        _mark_best(rows, col, direction)
    table = Table(id="identification-grid", caption="Identification (1:N): models compared", columns=columns,
                  rows=rows, sortable=True,
                  note="Closed set: rank-k, mean ± std over the trials, ties against the probe. Open set: FNIR at "
                       "the lowest threshold with FPIR <= target (NIST FRVT 1:N); n/a where the target is below "
                       "1 / non-mated searches. Compare rows only on the same data and gallery.")
    return Section("identification-grid", "Identification (1:N)", tables=[table])


def _floor(values: Sequence[Any]) -> float:
    pos = [v for v in (finite_float(x) for x in values) if v is not None and v > 0]
    return max(1e-6, 10 ** math.floor(math.log10(min(pos)) + 1e-9)) if pos else 1e-6


def identification_grid_plots(runs: Sequence[tuple[str, Mapping[str, Any]]],
                              label: Callable[[Mapping[str, Any]], str]) -> list[Markup]:
    """Every run's CMC on one chart and every run's open-set DET on another (those it has)."""
    cmc, det = [], []
    for _rid, r in _searched(runs):
        curves, name = _dict(r.get("curves")), str(r.get("name") or label(r))
        c = _dict(curves.get("cmc"))
        if _list(c.get("rank")) and len(_list(c.get("rank"))) == len(_list(c.get("rate"))):
            cmc.append(Series(name, _list(c["rank"]), _list(c["rate"])))
        d = _dict(curves.get("open_set_det"))
        if _list(d.get("fpir")) and len(_list(d.get("fpir"))) == len(_list(d.get("fnir"))):
            det.append(Series(name, _list(d["fpir"]), _list(d["fnir"])))
    plots = []
    if cmc:
        plots.append(line_chart(cmc, kind="grid-cmc", title="CMC", x_label="Rank", y_label="Identification rate",
                                y_lim=(0.0, 1.0), caption="Every run's CMC (mean over its trials)."))
    if det:
        xs = [x for s in det for x in s.x]
        ys = [y for s in det for y in s.y]
        plots.append(line_chart(det, kind="grid-open-set-det", title="Open-set DET",
                                x_label="False positive identification rate (FPIR)",
                                y_label="False negative identification rate (FNIR)", x_log=True, y_log=True,
                                x_lim=(_floor(xs), 1.0), y_lim=(_floor(ys), 1.0),
                                caption="Every run's FNIR against FPIR, both axes log (first trial)."))
    return plots
