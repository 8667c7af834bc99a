"""Run-page section of a detection run's failure gallery (``sections.detection_gallery``):
the images with the most missed and false faces at the best-F1 threshold, with the boxes drawn
(:func:`harness.tasks._gallery.detection_gallery`).  Built from results.json alone; the images
are the ``data:image/jpeg`` URIs the run stored, so the page stays one offline file.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from markupsafe import escape

from harness.report import _format as F
from harness.report._diagnostics import thumbnail_list
from harness.report.context import Section

__all__ = ["detection_gallery_section"]

_DATA_URI = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+")
_SWATCH = {"missed": "#dc2626", "false": "#d97706", "found": "#16a34a"}


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _image(item: Mapping[str, Any]) -> str:
    uri, name = str(item.get("uri", "")), str(item.get("file", ""))
    counts = (f'{F.fmt_count(item.get("missed"))} missed, {F.fmt_count(item.get("false"))} false, '
              f'{F.fmt_count(item.get("found"))} found')
    img = (f'<img src="{uri}" alt="{escape(name)}" title="{escape(name)}" style="max-width:320px;max-height:320px;'
           f'border:1px solid var(--line);border-radius:4px">' if _DATA_URI.fullmatch(uri)
           else f'<span class="thumb missing">{escape(name)}</span>')  # only the JPEG data URIs the run wrote
    return (f'<li style="font-size:12px;line-height:1.35;max-width:320px">{img}<br>{escape(counts)}'
            f'<br><span class="mono">{escape(name)}</span></li>')


def detection_gallery_section(results: Mapping[str, Any]) -> Section | None:
    g = _dict(_dict(results.get("sections")).get("detection_gallery"))
    if not g:
        return None
    counts = _dict(g.get("counts"))
    notes = [f"At the score threshold {F.fmt_threshold(g.get('threshold'))} ({g.get('rule', '')}), "
             f"{g.get('setting', '')} keep-list: {F.fmt_count(counts.get('missed'))} of "
             f"{F.fmt_count(counts.get('faces'))} faces missed and {F.fmt_count(counts.get('false'))} false faces "
             f"over {F.fmt_count(counts.get('images'))} images; the images with the most errors are shown as the "
             f"{g.get('thumbnail', 'image with the boxes drawn')}."]
    if g.get("truncated"):
        notes.append("The gallery reached its size cap; fewer images are shown.")
    legend = " ".join(f'<span style="color:{c}">■</span> {escape(k)}' for k, c in _SWATCH.items())
    items = "".join(_image(_dict(i)) for i in (g.get("images") or []) if isinstance(i, dict))
    body = items or '<li style="color:var(--muted)">no errors at this threshold</li>'
    figure = thumbnail_list("Missed and false faces", legend, body, gap=10)
    return Section(id="detection-gallery", title="Failure gallery", notes=notes, plots=[figure])
