"""The *Tracking* section of a run page (``sections.tracking``, written by :mod:`harness.tasks.tracking`).

Reads only ``results.json``: a table of the two followers (tracking and detect-every-frame:
fps, jitter, continuity, detector calls, NME where the frames are annotated), the jitter of
each frame as a line chart, and a strip of frames with each follower's points (inline JPEGs:
tracking green, detect-every-frame red).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from harness._values import finite_float
from harness.report import _format as F
from harness.report._svg import Series, line_chart
from harness.report.context import Cell, Column, ImageStrip, KeyValue, Link, Section, Table

__all__ = ["tracking_section"]

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
#: largest inline image accepted from results.json (characters of base64)
MAX_INLINE = 200_000


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _num_cell(value: Any, digits: int = 2) -> Cell:
    v = finite_float(value)
    return Cell("n/a" if v is None else f"{v:.{digits}f}", v)


def _rows(rows: list[dict[str, Any]], annotated: bool) -> Table:
    columns = [Column("Follower"), Column("fps", numeric=True, best="higher"),
               Column("ms / frame", numeric=True, best="lower"),
               Column("Jitter % (shared frames)", numeric=True, best="lower",
                      title="mean over the frames both followers have a shape on (and the frame before)"),
               Column("Jitter % (own frames)", numeric=True), Column("Median", numeric=True),
               Column("Frames with shape", numeric=True, best="higher"), Column("Breaks", numeric=True),
               Column("Detector calls", numeric=True), Column("Re-detections", numeric=True)]
    if annotated:
        columns.append(Column("NME (inter-ocular)", numeric=True, best="lower"))
    body = []
    for r in rows:
        cells = [Cell(str(r.get("mode", "")).replace("_", " ")), _num_cell(r.get("fps"), 1),
                 _num_cell(r.get("ms_per_frame"), 1), _num_cell(r.get("jitter_common")),
                 _num_cell(r.get("jitter_mean")), _num_cell(r.get("jitter_median")),
                 Cell(F.fmt_percent(r.get("with_shape"), 1), finite_float(r.get("with_shape"))),
                 _num_cell(r.get("breaks"), 0), _num_cell(r.get("detector_calls"), 0),
                 _num_cell(r.get("redetections"), 0)]
        if annotated:
            cells.append(_num_cell(r.get("nme"), 4))
        body.append(cells)
    apart = next((r for r in rows if r.get("apart_median") is not None), None)
    note = ("" if apart is None else
            f" Tracking's points are a median {finite_float(apart.get('apart_median')) or 0:.1f} % of the inter-ocular "
            f"distance from detect-every-frame's; {F.fmt_percent(apart.get('apart_over_50'), 0)} of frames are over "
            "50 % apart (the two follow different faces there, or tracking lost the face).")
    return Table(id="tracking-table", caption="Tracking against detecting on every frame (same frames, one run)",
                 columns=columns, rows=body,
                 note="Jitter: frame-to-frame point motion after removing the best similarity transform, in % of "
                      "the shape's inter-ocular distance; fps: detector + landmarker time only." + note)


def _strip(items: list[Any]) -> ImageStrip | None:
    images = []
    for item in items:
        item = _dict(item)
        data = str(item.get("jpeg") or "")
        if data and len(data) <= MAX_INLINE and _BASE64.fullmatch(data):
            images.append(Link(f"frame {item.get('frame')}", f"data:image/jpeg;base64,{data}"))
    return ImageStrip("Frames (tracking green, detect every frame red)", images) if images else None


def tracking_section(results: Mapping[str, Any]) -> Section | None:
    """The run page's *Tracking* section, or None for other runs."""
    sec = _dict(_dict(results.get("sections")).get("tracking"))
    if not sec:
        return None
    rows = [_dict(r) for r in _list(sec.get("rows"))]
    tables = [_rows(rows, bool(sec.get("annotated")))] if rows else []
    series = []
    for mode, curve in _dict(_dict(results.get("curves")).get("jitter")).items():
        c = _dict(curve)
        xs, ys = _list(c.get("x")), _list(c.get("y"))
        if xs and len(xs) == len(ys):
            series.append(Series(str(mode).replace("_", " "), xs, [finite_float(y) for y in ys]))
    plots = [line_chart(series, kind="jitter", title="Jitter per frame", x_label="frame",
                        y_label="% of inter-ocular")] if series else []
    strip = _strip(_list(sec.get("strip")))
    items = [KeyValue(F.field_label(k), str(sec[k])) for k in ("detector", "frames", "normaliser") if k in sec]
    notes = ["The frames carry no annotations: jitter, continuity and speed only."] if not sec.get("annotated") else []
    return Section("tracking", "Tracking", notes=notes, items=items, tables=tables, plots=plots,
                   strips=[strip] if strip else [])
