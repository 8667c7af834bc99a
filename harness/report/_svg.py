"""Plots drawn as inline SVG on the server: no JavaScript, no CDN, no matplotlib.

Two chart kinds cover every report plot:

* :func:`line_chart` – curves on linear or log axes (ROC, DET, PR, training);
* :func:`hist_chart` – overlaid score histograms, normalised to densities.

Each returns a :class:`markupsafe.Markup` ``<figure>`` holding the ``<svg>``
(scaled by its ``viewBox``) and an HTML legend.  Every text that may come
from a user (series labels, titles) is escaped here.  Long curves are thinned
to the points that move the line by at least half a pixel, so a 6,000-pair
ROC stays a few kilobytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

from harness._values import finite_float

__all__ = ["PALETTE", "Series", "hist_chart", "line_chart"]

#: colour-blind-friendly series colours, in order of use.
PALETTE = (
    "#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed",
    "#0891b2", "#db2777", "#4b5563", "#65a30d", "#b45309",
)

_W, _H = 560, 340
_ML, _MR, _MT, _MB = 62, 18, 14, 48


@dataclass(frozen=True)
class Series:
    """One curve: ``x`` and ``y`` of equal length; ``color`` from the palette when empty."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str = ""
    dashed: bool = False
    #: a confidence band: (x, low, high) drawn as a shaded area behind the curve
    band: tuple[Sequence[float], Sequence[float], Sequence[float]] | None = None


# ---------------------------------------------------------------- helpers
_num = finite_float


def _nice_step(span: float, target: int = 5) -> float:
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _linear_ticks(lo: float, hi: float) -> list[float]:
    step = _nice_step(hi - lo)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-6:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.6g}"


def _log_label(exp: int) -> Markup:
    if exp == 0:
        return Markup("1")
    sign = "−" if exp < 0 else ""
    return Markup(f'10<tspan dy="-6" font-size="9">{sign}{abs(exp)}</tspan>')


class _Axis:
    def __init__(self, lo: float, hi: float, log: bool, p0: float, p1: float) -> None:
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            hi = lo + 1.0
        self.lo, self.hi, self.log, self.p0, self.p1 = lo, hi, log, p0, p1

    def __call__(self, v: float) -> float | None:
        if self.log:
            if v <= 0:
                return None
            v = math.log10(v)
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)

    def ticks(self) -> list[tuple[float, Markup]]:
        out = []
        if self.log:
            for e in range(math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9) + 1):
                out.append((self.p0 + (e - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0), _log_label(e)))
        else:
            for t in _linear_ticks(self.lo, self.hi):
                out.append((self.p0 + (t - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0), Markup(escape(_fmt_tick(t)))))
        return out


def _range(values: list[float], log: bool, pad: bool) -> tuple[float, float]:
    vals = [v for v in values if (v > 0 if log else True)]
    if not vals:
        return (1e-3, 1.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        return 10 ** math.floor(math.log10(lo) + 1e-9), 10 ** math.ceil(math.log10(hi) - 1e-9)
    if lo == hi:
        lo, hi = lo - 0.5 if lo else -0.5, hi + 0.5 if hi else 0.5
    if pad:
        step = _nice_step(hi - lo)
        lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
    return lo, hi


def _path(xs: Sequence[float], ys: Sequence[float], ax: _Axis, ay: _Axis) -> str:
    parts: list[str] = []
    last: tuple[float, float] | None = None
    pending: tuple[float, float] | None = None
    pen_up = True
    for xv, yv in zip(xs, ys):
        x, y = _num(xv), _num(yv)
        px = ax(x) if x is not None else None
        py = ay(y) if y is not None else None
        if px is None or py is None:
            if pending is not None:
                parts.append(f"L{pending[0]:.1f},{pending[1]:.1f}")
                pending = None
            pen_up = True
            continue
        if pen_up:
            parts.append(f"M{px:.1f},{py:.1f}")
            last, pending, pen_up = (px, py), None, False
            continue
        assert last is not None
        if abs(px - last[0]) < 0.5 and abs(py - last[1]) < 0.5:
            pending = (px, py)
            continue
        parts.append(f"L{px:.1f},{py:.1f}")
        last, pending = (px, py), None
    if pending is not None:
        parts.append(f"L{pending[0]:.1f},{pending[1]:.1f}")
    return "".join(parts)


def _band_path(band: tuple[Sequence[float], Sequence[float], Sequence[float]], ax: _Axis, ay: _Axis) -> str:
    """A closed polygon along ``low`` (left to right) and back along ``high``;
    values outside a log axis (≤ 0) sit on the axis edge, points with a
    missing value are left out."""
    xs, lows, highs = band
    edge = 10 ** ay.lo if ay.log else None
    pts = []
    for xv, lv, hv in zip(xs, lows, highs):
        x, lo, hi = _num(xv), _num(lv), _num(hv)
        if x is None or lo is None or hi is None:
            continue
        px = ax(x)
        if px is None:
            continue
        if edge is not None:
            lo, hi = max(lo, edge), max(hi, edge)
        pts.append((px, ay(lo), ay(hi)))
    if len(pts) < 2:
        return ""
    fwd = "".join(f"{'M' if i == 0 else 'L'}{px:.1f},{pl:.1f}" for i, (px, pl, _) in enumerate(pts))
    back = "".join(f"L{px:.1f},{ph:.1f}" for px, _, ph in reversed(pts))
    return fwd + back + "Z"


def _uid(*parts: object) -> str:
    return "c" + hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


def _frame(ax: _Axis, ay: _Axis, x_label: str, y_label: str, clip: str, grid: bool = True) -> list[str]:
    x0, x1, y0, y1 = ax.p0, ax.p1, ay.p0, ay.p1
    out = [
        f'<clipPath id="{clip}"><rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}"/></clipPath>',
        f'<rect class="plot-bg" x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="#fff"/>',
    ]
    for px, label in ax.ticks():
        if grid:
            out.append(f'<line class="grid" x1="{px:.1f}" y1="{y1}" x2="{px:.1f}" y2="{y0}" stroke="#e5e7eb"/>')
        out.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y0 + 5}" stroke="#6b7280"/>')
        out.append(f'<text class="tick" x="{px:.1f}" y="{y0 + 18}" text-anchor="middle">{label}</text>')
    for py, label in ay.ticks():
        if grid:
            out.append(f'<line class="grid" x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<line x1="{x0 - 5}" y1="{py:.1f}" x2="{x0}" y2="{py:.1f}" stroke="#6b7280"/>')
        out.append(f'<text class="tick" x="{x0 - 8}" y="{py + 4:.1f}" text-anchor="end">{label}</text>')
    out.append(
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#9ca3af"/>'
    )
    out.append(
        f'<text class="axis-label" x="{(x0 + x1) / 2:.1f}" y="{_H - 8}" text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append(
        f'<text class="axis-label" transform="translate(14,{(y0 + y1) / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return out


def _figure(kind: str, title: str, body: list[str], legend: list[tuple[str, str, bool]], caption: str) -> Markup:
    svg = (
        f'<svg class="plot" data-plot="{escape(kind)}" viewBox="0 0 {_W} {_H}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'font-family="inherit" font-size="11">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )
    items = "".join(
        f'<li><span class="swatch{" dashed" if dashed else ""}" style="--c:{escape(color)}"></span>'
        f"{escape(label)}</li>"
        for label, color, dashed in legend
    )
    legend_html = f'<ul class="legend">{items}</ul>' if len(legend) > 1 or (legend and legend[0][0]) else ""
    cap = f"<figcaption><strong>{escape(title)}</strong>"
    cap += f" <span>{escape(caption)}</span>" if caption else ""
    cap += "</figcaption>"
    return Markup(f'<figure class="chart">{cap}{svg}{legend_html}</figure>')


# ------------------------------------------------------------------ charts
def line_chart(
    series: Sequence[Series],
    *,
    kind: str,
    title: str,
    x_label: str,
    y_label: str,
    x_log: bool = False,
    y_log: bool = False,
    x_lim: tuple[float, float] | None = None,
    y_lim: tuple[float, float] | None = None,
    diagonal: bool = False,
    caption: str = "",
) -> Markup:
    """Curves on one set of axes.

    :param kind: a short id stored as ``data-plot`` (``roc``, ``det`` …) for tests and CSS.
    :param x_log, y_log: log10 axes (points ≤ 0 are left out, the line breaks there).
    :param x_lim, y_lim: axis range; from the data (rounded to nice values) when None.
    :param diagonal: draw the y = x line (chance level of a ROC on linear axes).

    A series with a ``band`` gets a shaded area (its colour, 16 % opaque)
    drawn under every curve.
    """
    series = [s for s in series if len(s.x) and len(s.y)]
    xs_all = [v for s in series for v in (_num(x) for x in s.x) if v is not None]
    ys_all = [v for s in series for v in (_num(y) for y in s.y) if v is not None]
    xl = x_lim or _range(xs_all, x_log, pad=False)
    yl = y_lim or _range(ys_all, y_log, pad=True)
    ax = _Axis(xl[0], xl[1], x_log, _ML, _W - _MR)
    ay = _Axis(yl[0], yl[1], y_log, _H - _MB, _MT)
    clip = _uid(kind, title, [(s.label, len(s.x)) for s in series])
    body = _frame(ax, ay, x_label, y_label, clip)
    if diagonal:
        lo, hi = max(xl[0], yl[0]), min(xl[1], yl[1])
        d = _path([lo, hi], [lo, hi], ax, ay)
        body.append(f'<path d="{d}" stroke="#9ca3af" stroke-dasharray="4 4" fill="none" clip-path="url(#{clip})"/>')
    legend = []
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        if s.band is not None:
            bd = _band_path(s.band, ax, ay)
            if bd:
                body.append(f'<path class="band" data-label="{escape(s.label)}" d="{bd}" fill="{escape(color)}" '
                            f'fill-opacity="0.16" stroke="none" clip-path="url(#{clip})"/>')
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        d = _path(s.x, s.y, ax, ay)
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        body.append(
            f'<path class="series" data-label="{escape(s.label)}" d="{d}" fill="none" stroke="{escape(color)}" '
            f'stroke-width="1.8" stroke-linejoin="round"{dash} clip-path="url(#{clip})">'
            f"<title>{escape(s.label)}</title></path>"
        )
        legend.append((s.label, color, s.dashed))
    if not series:
        body.append(
            f'<text x="{(_ML + _W - _MR) / 2}" y="{_H / 2}" text-anchor="middle" fill="#6b7280">no data</text>'
        )
    return _figure(kind, title, body, legend, caption)


def hist_chart(
    hists: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    kind: str,
    title: str,
    x_label: str,
    caption: str = "",
) -> Markup:
    """Overlaid histograms ``(label, edges, counts)``, each normalised to a density
    (area 1), so a 3,000-pair genuine set and a 300,000-pair impostor set compare."""
    prepared = []
    for label, edges, counts in hists:
        e = [_num(v) for v in edges]
        c = [_num(v) for v in counts]
        if len(e) != len(c) + 1 or any(v is None for v in e) or not c:
            continue
        c = [v if v is not None and v > 0 else 0.0 for v in c]
        total = sum(c)
        if total <= 0:
            continue
        dens = [cnt / (total * (e[i + 1] - e[i])) if e[i + 1] > e[i] else 0.0 for i, cnt in enumerate(c)]  # type: ignore[operator]
        prepared.append((label, e, dens))
    xs_all = [v for _, e, _ in prepared for v in e]
    ys_all = [v for _, _, d in prepared for v in d]
    xl = (min(xs_all), max(xs_all)) if xs_all else (0.0, 1.0)
    if xl[0] == xl[1]:
        xl = (xl[0] - 0.5, xl[1] + 0.5)
    ymax = max(ys_all) if ys_all else 1.0
    step = _nice_step(ymax * 1.05) if ymax > 0 else 0.2
    yl = (0.0, math.ceil(ymax * 1.05 / step) * step if ymax > 0 else 1.0)
    ax = _Axis(xl[0], xl[1], False, _ML, _W - _MR)
    ay = _Axis(yl[0], yl[1], False, _H - _MB, _MT)
    clip = _uid(kind, title, [p[0] for p in prepared])
    body = _frame(ax, ay, x_label, "density", clip)
    legend = []
    for i, (label, e, dens) in enumerate(prepared):
        color = PALETTE[i % len(PALETTE)]
        pts = [f"M{ax(e[0]):.1f},{ay(0):.1f}"]
        for j, d in enumerate(dens):
            pts.append(f"L{ax(e[j]):.1f},{ay(d):.1f}L{ax(e[j + 1]):.1f},{ay(d):.1f}")
        pts.append(f"L{ax(e[-1]):.1f},{ay(0):.1f}Z")
        body.append(
            f'<path class="series" data-label="{escape(label)}" d="{"".join(pts)}" fill="{color}" '
            f'fill-opacity="0.22" stroke="{color}" stroke-width="1.5" clip-path="url(#{clip})">'
            f"<title>{escape(label)}</title></path>"
        )
        legend.append((label, color, False))
    return _figure(kind, title, body, legend, caption)
