"""Run-page sections that show *where* a verification system fails:
demographic differentials (``sections.demographics``), the failure gallery
(``sections.failure_gallery``) and error-versus-reject curves
(``sections.quality``).  Built from results.json alone, like every section.

The per-group bar charts and the gallery are server-drawn
:class:`markupsafe.Markup` figures (every user text escaped here), shown
among a section's plots; thumbnails are the ``data:image/jpeg`` URIs the
run stored, so the page stays one offline file.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from markupsafe import Markup, escape

from harness._values import finite_float
from harness.report import _format as F
from harness.report._svg import PALETTE, Series, line_chart
from harness.report.context import Cell, Column, KeyValue, Section, Table

__all__ = ["bar_chart", "demographics_section", "diagnostic_sections", "gallery_figure", "gallery_section",
           "quality_section", "thumbnail_list"]

_num = finite_float
_DATA_URI = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/=]+")
_BW, _BH = 560, 300
_BL, _BR, _BT, _BB = 62, 18, 14, 64


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _ci_text(ci: Any, fmt=F.fmt_percent) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
        return f"[{fmt(ci[0])}, {fmt(ci[1])}]"
    return ""


def _ratio(v: Any) -> str:
    f = _num(v)
    return F.NA if f is None else f"{f:.3g}"


# ------------------------------------------------------------------ bar chart
def bar_chart(bars: Sequence[tuple[str, float | None, Sequence[float] | None]], *, kind: str, title: str,
              y_label: str, caption: str = "", color: str = PALETTE[0]) -> Markup:
    """Vertical bars ``(label, value, [low, high] or None)`` with interval whiskers, linear
    axis from 0; a bar with no value is drawn as "n/a"."""
    vals = [_num(v) for _, v, _ in bars]
    highs = [_num(ci[1]) for _, _, ci in bars if ci and len(ci) == 2]
    top = max([v for v in vals + highs if v is not None] or [0.0])
    top = top * 1.1 if top > 0 else 1.0
    x0, x1, y0, y1 = _BL, _BW - _BR, _BH - _BB, _BT

    def y(v: float) -> float:
        return y0 - (y0 - y1) * min(max(v / top, 0.0), 1.0)

    body = [f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff"/>']
    for k in range(5):
        tv = top * k / 4
        body.append(f'<line x1="{x0}" y1="{y(tv):.1f}" x2="{x1}" y2="{y(tv):.1f}" stroke="#e5e7eb"/>'
                    f'<text x="{x0 - 6}" y="{y(tv) + 4:.1f}" text-anchor="end" fill="#4b5563">'
                    f'{escape(F.fmt_percent(tv, 2 if top < 0.1 else 1))}</text>')
    n = max(len(bars), 1)
    slot = (x1 - x0) / n
    width = min(slot * 0.6, 60)
    for i, ((label, _v, ci), v) in enumerate(zip(bars, vals)):
        cx = x0 + slot * (i + 0.5)
        tip = f"{label}: {F.fmt_percent(v)}" + (f" {_ci_text(ci)}" if ci else "")
        if v is None:
            body.append(f'<text x="{cx:.1f}" y="{y0 - 6}" text-anchor="middle" fill="#6b7280">n/a</text>')
        else:
            body.append(f'<rect class="bar" data-label="{escape(label)}" x="{cx - width / 2:.1f}" y="{y(v):.1f}" '
                        f'width="{width:.1f}" height="{y0 - y(v):.1f}" fill="{escape(color)}" fill-opacity="0.8">'
                        f'<title>{escape(tip)}</title></rect>')
        lo, hi = (_num(ci[0]), _num(ci[1])) if ci and len(ci) == 2 else (None, None)
        if lo is not None and hi is not None:
            body.append(f'<path class="whisker" d="M{cx:.1f},{y(lo):.1f}V{y(hi):.1f}M{cx - 6:.1f},{y(lo):.1f}'
                        f'H{cx + 6:.1f}M{cx - 6:.1f},{y(hi):.1f}H{cx + 6:.1f}" stroke="#111827" fill="none"/>')
        short = label if len(label) <= 14 else label[:13] + "…"
        body.append(f'<text x="{cx:.1f}" y="{y0 + 16}" text-anchor="middle" fill="#111827">{escape(short)}</text>')
    body.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#6b7280"/>')
    body.append(f'<text transform="translate(14 {(y0 + y1) / 2:.0f}) rotate(-90)" text-anchor="middle" '
                f'fill="#111827">{escape(y_label)}</text>')
    svg = (f'<svg class="plot" data-plot="{escape(kind)}" viewBox="0 0 {_BW} {_BH}" xmlns="http://www.w3.org/2000/svg" '
           f'role="img" aria-label="{escape(title)}" font-family="inherit" font-size="11">'
           f'<title>{escape(title)}</title>{"".join(body)}</svg>')
    cap = f"<figcaption><strong>{escape(title)}</strong>" + (f" <span>{escape(caption)}</span>" if caption else "")
    return Markup(f'<figure class="chart">{cap}</figcaption>{svg}</figure>')


# ------------------------------------------------------------- demographics
def _group_table(attr: str, d: Mapping[str, Any]) -> Table:
    rows = []
    for g in _list(d.get("groups")):
        g = _dict(g)
        rows.append([
            Cell(str(g.get("group", ""))),
            Cell(F.fmt_count(g.get("genuine")), _num(g.get("genuine"))),
            Cell(F.fmt_percent(g.get("fnmr")), _num(g.get("fnmr")), note=_ci_text(g.get("fnmr_ci"))),
            Cell(F.fmt_count(g.get("impostor")), _num(g.get("impostor"))),
            Cell(F.fmt_percent(g.get("fmr"), 3), _num(g.get("fmr")), note=_ci_text(g.get("fmr_ci"))),
        ])
    return Table(
        id=f"groups-{re.sub(r'[^a-z0-9_-]+', '-', attr.lower())}", caption=f"{attr}: error rates per group",
        columns=[Column("Group"), Column("Genuine pairs", numeric=True), Column("FNMR", numeric=True, best="lower"),
                 Column("Same-group impostor pairs", numeric=True), Column("FMR", numeric=True, best="lower")],
        rows=rows, sortable=True,
        note="FNMR over genuine pairs with both images in the group; FMR over impostor pairs with both images "
             "in the group (demographically matched impostors).",
    )


def _summary_items(d: Mapping[str, Any]) -> list[KeyValue]:
    s = _dict(d.get("summary"))
    items = []
    for key, label in (("fmr_max_min", "FMR max / min"), ("fmr_max_gmean", "FMR max / geometric mean"),
                       ("fnmr_max_min", "FNMR max / min"), ("fnmr_max_gmean", "FNMR max / geometric mean")):
        v = _dict(s.get(key))
        items.append(KeyValue(label, f"{_ratio(v.get('value'))} {_ci_text(v.get('ci'), _ratio)}".strip()))
    fdr = _dict(s.get("fdr"))
    items.append(KeyValue(f"Fairness discrepancy rate (α = {_ratio(fdr.get('alpha'))})",
                          f"{F.fmt_number(fdr.get('value'))} {_ci_text(fdr.get('ci'), F.fmt_number)}".strip()))
    same, cross, sc = _dict(s.get("fmr_same")), _dict(s.get("fmr_cross")), _dict(s.get("same_over_cross"))
    items.append(KeyValue(
        "Same- / cross-group impostor FMR",
        f"{F.fmt_percent(same.get('value'), 3)} / {F.fmt_percent(cross.get('value'), 3)} "
        f"(ratio {_ratio(sc.get('value'))} {_ci_text(sc.get('ci'), _ratio)})".replace(" )", ")")))
    counts = _dict(d.get("counts"))
    left = [f"{F.fmt_count(counts.get(k))} {w}" for k, w in (("unknown", "pairs with an unknown group"),
                                                              ("genuine_mixed", "genuine pairs across groups"))
            if counts.get(k)]
    if left:
        items.append(KeyValue("Left out", "; ".join(left)))
    return items


def demographics_section(results: Mapping[str, Any]) -> Section | None:
    dm = _dict(_dict(results.get("sections")).get("demographics"))
    attrs = _dict(dm.get("attributes"))
    if not attrs and not dm.get("skipped"):
        return None
    first_ci = _dict(_dict(next(iter(attrs.values()), {})).get("ci"))
    notes = [
        f"One global threshold {F.fmt_threshold(dm.get('threshold'))}: the lowest with FMR ≤ "
        f"{F.fmt_far(dm.get('fmr_target'))} over all impostor pairs (realised {F.fmt_percent(dm.get('realised_fmr'), 3)}),"
        " held fixed for every group (ISO/IEC 19795-10; NIST FRVT Part 8)."]
    if first_ci:
        notes.append(f"Intervals: {F.fmt_number(first_ci.get('level'))} {first_ci.get('method')} bootstrap over "
                     f"{first_ci.get('unit')}, B = {first_ci.get('B')}, seed {first_ci.get('seed')}, threshold held fixed.")
    notes += [f"{a}: not analysed — {why}" for a, why in _dict(dm.get("skipped")).items()]
    items = [KeyValue("Groups file", f"{dm.get('source', '')} (by {dm.get('key', '?')}, sha256 {dm.get('sha256', '?')})",
                      mono=True)]
    matched = _dict(dm.get("matched"))
    if matched:
        items.append(KeyValue("Images matched", f"{F.fmt_count(matched.get('images'))} of {F.fmt_count(matched.get('of'))}"))
    tables, plots = [], []
    for attr, d in attrs.items():
        d = _dict(d)
        tables.append(_group_table(str(attr), d))
        items += [KeyValue(f"{attr}: {kv.key}", kv.value) for kv in _summary_items(d)]
        groups = [_dict(g) for g in _list(d.get("groups"))]
        plots.append(bar_chart([(str(g.get("group")), g.get("fmr"), g.get("fmr_ci")) for g in groups],
                               kind="group-fmr", title=f"FMR by {attr}", y_label="FMR", color=PALETTE[1],
                               caption="same-group impostors, one global threshold, 95 % whiskers"))
        plots.append(bar_chart([(str(g.get("group")), g.get("fnmr"), g.get("fnmr_ci")) for g in groups],
                               kind="group-fnmr", title=f"FNMR by {attr}", y_label="FNMR", color=PALETTE[0],
                               caption="genuine pairs, one global threshold, 95 % whiskers"))
    return Section(id="demographics", title="Demographic differentials", notes=notes, items=items,
                   tables=tables, plots=plots)


# ----------------------------------------------------------------- gallery
def _thumb(img: Mapping[str, Any]) -> str:
    uri = str(img.get("uri", ""))
    name = str(img.get("file", ""))
    flag = " (fallback crop)" if img.get("fallback") else ""
    if not _DATA_URI.fullmatch(uri):  # only the JPEG data URIs the run wrote; nothing else becomes a src
        return f'<span class="thumb missing">{escape(name)}</span>'
    return (f'<img src="{uri}" alt="{escape(name)}{flag}" title="{escape(name)}{flag}" width="72" height="72" '
            f'style="object-fit:contain;border:1px solid var(--line);border-radius:4px{";outline:2px solid #d97706" if flag else ""}">')


def gallery_figure(title: str, pairs: Sequence[Mapping[str, Any]], caption: str) -> Markup:
    """A figure of thumbnail pairs with their scores and file names."""
    cells = []
    for p in pairs:
        a, b = _dict(p.get("a")), _dict(p.get("b"))
        cells.append(
            '<li style="display:flex;gap:6px;align-items:flex-start;margin:0 0 8px">'
            f'{_thumb(a)}{_thumb(b)}<div style="font-size:12px;line-height:1.35">'
            f'<strong>{escape(F.fmt_number(p.get("score")))}</strong> score'
            f'<br><span class="mono">{escape(str(a.get("file", "")))}</span>'
            f'<br><span class="mono">{escape(str(b.get("file", "")))}</span></div></li>')
    body = "".join(cells) or '<li style="color:var(--muted)">none at this threshold</li>'
    return thumbnail_list(title, escape(caption), body, wrap=False)


def thumbnail_list(title: str, caption: str, items: str, *, wrap: bool = True, gap: int = 8) -> Markup:
    """A page gallery: a captioned list of thumbnails, in a wrapping row (``wrap``) or a column.

    ``caption`` and ``items`` are HTML the caller has escaped; ``title`` is text."""
    row = f"display:flex;flex-wrap:wrap;gap:{gap}px" if wrap else ""
    return Markup(f'<figure class="chart gallery"><figcaption><strong>{escape(title)}</strong> '
                  f'<span>{caption}</span></figcaption>'
                  f'<ul style="list-style:none;padding:0;margin:6px 0 0;{row}">{items}</ul></figure>')


def _fallback_figure(images: Sequence[Mapping[str, Any]], total: Any) -> Markup:
    cells = "".join(f'<li style="text-align:center;font-size:11px">{_thumb(_dict(i))}<br>'
                    f'<span class="mono">{escape(str(_dict(i).get("file", "")))}</span></li>' for i in images)
    return thumbnail_list("Detection fell back", f"{escape(F.fmt_count(total))} image(s) with no face found: "
                          "the centre crop that was embedded", cells)


def _presentations_figure(title: str, items: Sequence[Any], caption: str) -> Markup:
    """Single liveness presentations with score, species and the decision."""
    cells = []
    for it in items:
        it = _dict(it)
        verdict = "accepted" if it.get("accepted") else "rejected"
        cells.append(f'<li style="text-align:center;font-size:11px;max-width:110px">{_thumb(it)}<br>'
                     f'<strong>{escape(F.fmt_number(it.get("score")))}</strong> {escape(verdict)}'
                     f'<br>{escape(str(it.get("species") or "bona fide"))}'
                     f'<br><span class="mono">{escape(str(it.get("file", "")))}</span></li>')
    body = "".join(cells) or '<li style="color:var(--muted)">none</li>'
    return thumbnail_list(title, escape(caption), body)


def _liveness_gallery(g: Mapping[str, Any]) -> Section:
    counts = _dict(g.get("counts"))
    notes = [f"Threshold {F.fmt_threshold(g.get('threshold'))} ({g.get('rule', '')}): "
             f"{F.fmt_count(counts.get('attacks_accepted'))} attacks accepted, "
             f"{F.fmt_count(counts.get('bona_fide_rejected'))} bona fide rejected; shown as the "
             f"{g.get('thumbnail', 'inputs the model scored')}."]
    if g.get("truncated"):
        notes.append("The gallery reached its size cap; fewer examples are shown.")
    plots = [_presentations_figure("Attacks scored most like bona fide", _list(g.get("attacks")), "highest scores"),
             _presentations_figure("Bona fide scored most like attacks", _list(g.get("bona_fide")), "lowest scores")]
    return Section(id="failure-gallery", title="Failure gallery", notes=notes, plots=plots)


def gallery_section(results: Mapping[str, Any]) -> Section | None:
    g = _dict(_dict(results.get("sections")).get("failure_gallery"))
    if not g:
        return None
    if g.get("kind") == "liveness":
        return _liveness_gallery(g)
    counts = _dict(g.get("counts"))
    fa, fr = _list(g.get("false_accepts")), _list(g.get("false_rejects"))
    notes = [f"At the operating threshold {F.fmt_threshold(g.get('threshold'))} ({g.get('rule', '')}): "
             f"{F.fmt_count(counts.get('false_accepts'))} false accepts and {F.fmt_count(counts.get('false_rejects'))} "
             f"false rejects; the hardest of each are shown as the {g.get('thumbnail', 'crops that were embedded')}."]
    if g.get("truncated"):
        notes.append("The gallery reached its size cap; fewer examples are shown.")
    plots = [gallery_figure("Hardest false accepts", fa, "impostor pairs with the highest scores"),
             gallery_figure("Hardest false rejects", fr, "genuine pairs with the lowest scores")]
    if counts.get("fallback_images"):
        plots.append(_fallback_figure(_list(g.get("fallbacks")), counts.get("fallback_images")))
    return Section(id="failure-gallery", title="Failure gallery", notes=notes, plots=plots)


# ----------------------------------------------------------------- quality
def quality_section(results: Mapping[str, Any]) -> Section | None:
    q = _dict(_dict(results.get("sections")).get("quality"))
    signals = _dict(q.get("signals"))
    if not signals:
        return None
    at = sorted({k for s in signals.values() for k in _dict(_dict(s).get("fnmr_at"))}, key=float)
    rows, series = [], []
    for i, (name, s) in enumerate(signals.items()):
        s = _dict(s)
        rows.append([Cell(str(name), title=str(s.get("description", ""))),
                     Cell(F.fmt_number(s.get("auc")), _num(s.get("auc"))),
                     Cell(F.fmt_number(s.get("auc_random")), _num(s.get("auc_random"))),
                     Cell(F.fmt_number(s.get("auc_oracle")), _num(s.get("auc_oracle")))]
                    + [Cell(F.fmt_percent(_dict(s.get("fnmr_at")).get(k)), _num(_dict(s.get("fnmr_at")).get(k)))
                       for k in at])
        c = _dict(s.get("curve"))
        series.append(Series(str(name), _list(c.get("reject")), _list(c.get("fnmr")), PALETTE[i % len(PALETTE)]))
    first = _dict(_dict(next(iter(signals.values()))).get("curve"))
    series.append(Series("oracle (false non-matches first)", _list(first.get("reject")), _list(first.get("oracle")),
                         "#9ca3af", dashed=True))
    xs, ys = _list(first.get("reject")), _list(first.get("fnmr"))
    if xs and ys:  # rejecting at random keeps FNMR where it started
        series.append(Series("random rejection", [xs[0], xs[-1]], [ys[0], ys[0]], "#4b5563", dashed=True))
    r_max = F.fmt_percent(q.get("max_reject"), 0)
    table = Table(
        id="evrc", caption="Error versus reject (ISO/IEC 29794-1 EVRC)",
        columns=[Column("Signal"), Column(f"Area 0–{r_max}", numeric=True, best="lower"),
                 Column("Random", numeric=True), Column("Oracle", numeric=True)]
        + [Column(f"FNMR @ {F.fmt_percent(float(k), 0)}", numeric=True, best="lower",
                  title=f"FNMR with the {F.fmt_percent(float(k), 0)} lowest-quality genuine pairs rejected")
           for k in at],
        rows=rows, sortable=True,
        note=f"Area under FNMR(reject fraction) from 0 to {r_max}; lower is better, random rejection keeps FNMR flat. "
             f"Pair quality = the lower of its two images; {q.get('rule', '')}.")
    notes = [f"Threshold {F.fmt_threshold(q.get('threshold'))} fixed at FMR {F.fmt_far(q.get('fmr_target'))} "
             f"(realised {F.fmt_percent(q.get('realised_fmr'), 3)}) before any rejection; "
             f"{F.fmt_count(q.get('false_non_matches'))} false non-matches among "
             f"{F.fmt_count(q.get('n_genuine'))} genuine pairs."]
    notes += [f"Not available: {m}." for m in _list(q.get("unavailable"))]
    plot = line_chart(series, kind="evrc", title="Error versus reject", x_label="fraction of genuine pairs rejected",
                      y_label="FNMR", caption="lowest-quality pairs rejected first; threshold fixed")
    items = [KeyValue(str(n), str(_dict(s).get("description", ""))) for n, s in signals.items()]
    return Section(id="quality", title="Quality: error versus reject", notes=notes, items=items, tables=[table],
                   plots=[plot])


def diagnostic_sections(results: Mapping[str, Any]) -> list[Section]:
    """The sections of this module the results hold, in page order."""
    out = []
    for build in (demographics_section, gallery_section, quality_section):
        s = build(results)
        if s is not None:
            out.append(s)
    return out
