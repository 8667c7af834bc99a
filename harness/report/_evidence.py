"""Uncertainty and provenance on the pages: interval texts, ROC / DET bands,
"not distinguishable" flags, measured-vs-published, and readable sub-tables.

Everything reads the stored ``results.json`` dicts (see docs/metrics.md for
``meta.ci``, ``curves.roc_band`` and ``sections.intervals``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

from harness._values import finite_float
from harness.report import _format as F
from harness.report.context import Cell, Column, KeyValue, Section, Table

__all__ = [
    "NOT_DISTINGUISHABLE",
    "ci_bounds",
    "ci_note",
    "det_band",
    "flag_overlaps",
    "intervals_text",
    "list_table",
    "measurable_tar_names",
    "published_section",
    "roc_band",
]

NOT_DISTINGUISHABLE = "not distinguishable at 95 %"

_num = finite_float


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- intervals
def ci_bounds(m: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(low, high)`` of a metric record's interval, or None."""
    ci = m.get("ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        lo, hi = _num(ci[0]), _num(ci[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def _unit_text(unit: str) -> str:
    return {"subjects": "subjects (identities with all their pairs)", "pairs": "pairs",
            "trials": "trials", "presentations": "presentations", "images": "images",
            "probes": "probe searches"}.get(unit, unit)


def ci_note(info: Mapping[str, Any]) -> str:
    """How an interval was made, from ``meta.ci``: ``95 % percentile bootstrap over
    subjects, B = 1,000, seed 0`` or ``95 % exact binomial (Clopper–Pearson), 3 errors
    in 3,000``."""
    if not info:
        return ""
    level = _num(info.get("level"))
    head = f"{level * 100:g} % " if level is not None else ""
    method = str(info.get("method", ""))
    if info.get("unit") == "trials" or method in ("clopper-pearson", "wilson"):
        name = "exact binomial (Clopper–Pearson)" if method == "clopper-pearson" else "Wilson score"
        text = f"{head}{name}"
        if _num(info.get("errors")) is not None and _num(info.get("n")) is not None:
            text += f", {F.fmt_count(info['errors'])} errors in {F.fmt_count(info['n'])}"
        if info.get("species"):
            text += f" (worst species: {info['species']})"
        if _num(info.get("rule_of_3")) is not None:
            text += f"; no error seen — rule of 3 upper bound {F.fmt_far(info['rule_of_3'])}"
        return text
    name = "BCa" if method == "bca" else method
    text = f"{head}{name} bootstrap over {_unit_text(str(info.get('unit', '?')))}"
    if _num(info.get("B")) is not None:
        text += f", B = {F.fmt_count(info['B'])}"
    if info.get("seed") is not None:
        text += f", seed {info['seed']}"
    if _num(info.get("invalid")):
        text += f" ({F.fmt_count(info['invalid'])} replicates undefined, left out)"
    return text


def intervals_text(results: Mapping[str, Any]) -> str:
    """One sentence for the protocol box: how this run's intervals were made."""
    sections = _dict(results.get("sections"))
    st = _dict(sections.get("intervals")) or _dict(_dict(results.get("protocol")).get("intervals"))
    if not st:
        for key in ("identification", "open_set"):
            st = st or _dict(_dict(sections.get(key)).get("intervals"))
    if not st:
        return ""
    if not _num(st.get("B")):
        return str(st.get("note") or "none")
    text = ci_note({**st, "method": st.get("method", "percentile")})
    if st.get("unit_reason"):
        text += f" ({st['unit_reason']})"
    if st.get("fixed_threshold"):
        text += f"; error rates at a fixed threshold: {st['fixed_threshold']}"
    if st.get("search_unit"):  # IJB templates: the 1:N bootstrap's unit
        text += f"; 1:N: over {st['search_unit']}"
    for name, why in _dict(st.get("without")).items():  # metrics left without an interval, and why
        text += f"; none for {name}: {why}"
    return text


def flag_overlaps(cells: Sequence[Cell | None], bounds: Sequence[tuple[float, float] | None],
                  values: Sequence[float | None], direction: str) -> int:
    """Flag every cell whose interval overlaps the best value's interval as
    :data:`NOT_DISTINGUISHABLE` from it (the best cell too, when any other is);
    returns how many were flagged."""
    ranked = [(v, i) for i, v in enumerate(values) if v is not None and bounds[i] is not None]
    if len(ranked) < 2:
        return 0
    best_v, best_i = (max if direction == "higher" else min)(ranked)
    blo, bhi = bounds[best_i]  # type: ignore[misc]
    flagged = 0
    for _, i in ranked:
        if i == best_i:
            continue
        lo, hi = bounds[i]  # type: ignore[misc]
        if lo <= bhi and blo <= hi:
            cell = cells[i]
            if cell is not None:
                cell.note = (cell.note + " " if cell.note else "") + "≈"
                cell.title = f"{NOT_DISTINGUISHABLE} from the best ({cell.title})" if cell.title else \
                    f"{NOT_DISTINGUISHABLE} from the best: the 95 % intervals overlap"
            flagged += 1
    if flagged and cells[best_i] is not None:
        best = cells[best_i]
        best.note = (best.note + " " if best.note else "") + "≈"
        best.title = f"best, but {NOT_DISTINGUISHABLE} from {flagged} other run{'s' if flagged > 1 else ''}"
    return flagged


# -------------------------------------------------------------------- bands
def roc_band(curves: Mapping[str, Any]) -> tuple[list, list, list] | None:
    """``(far, tar_low, tar_high)`` of ``curves.roc_band``, or None."""
    band = _dict(curves.get("roc_band"))
    far, lo, hi = _list(band.get("far")), _list(band.get("tar_low")), _list(band.get("tar_high"))
    n = min(len(far), len(lo), len(hi))
    return (far[:n], lo[:n], hi[:n]) if n >= 2 else None


def det_band(curves: Mapping[str, Any]) -> tuple[list, list, list] | None:
    """The same band as FRR = 1 - TAR (low and high swapped)."""
    band = roc_band(curves)
    if band is None:
        return None
    far, lo, hi = band
    flip = [None if _num(v) is None else 1.0 - float(v) for v in hi]
    flop = [None if _num(v) is None else 1.0 - float(v) for v in lo]
    return far, flip, flop


def band_caption(curves: Mapping[str, Any]) -> str:
    band = _dict(curves.get("roc_band"))
    if not band:
        return ""
    level = _num(band.get("level")) or 0.95
    return (f" Shaded: pointwise {level * 100:g} % {band.get('method', 'percentile')} bootstrap band over "
            f"{_unit_text(str(band.get('unit', '?')))} (B = {F.fmt_count(band.get('B'))}).")


# ---------------------------------------------------------------- headline
def _far_of(name: str) -> float | None:
    m = re.fullmatch(r"tar_at_far_(.+)", name)
    if not m:
        return None
    try:
        return float(m.group(1))
    except ValueError:
        return None


def measurable_tar_names(metrics: Sequence[Mapping[str, Any]], count: int = 1) -> list[str]:
    """The ``count`` most stringent TAR@FAR metrics the data can measure (a value,
    and a target at or above 1 / N_impostor), lowest FAR first."""
    found = []
    for m in metrics:
        name = str(m.get("name", ""))
        far = _far_of(name)
        if far is None or _num(m.get("value")) is None:
            continue
        n_imp = _num(_dict(m.get("meta")).get("n_impostor"))
        if n_imp and far * n_imp < 1 - 1e-9:
            continue
        found.append((far, name))
    return [n for _, n in sorted(found)[:count]]


# ---------------------------------------------------------------- published
_PUBLISHED_ALIASES = {"lfw_accuracy": ("lfw_accuracy", "accuracy"), "accuracy": ("accuracy", "lfw_accuracy")}


def published_section(results: Mapping[str, Any], by_name: Mapping[str, Mapping[str, Any]]) -> Section | None:
    """Measured beside published: each published figure that names a metric of this run
    (``lfw_accuracy`` ↔ ``accuracy``), with the measured value, its interval and the
    difference; other published facts (threshold, jitters) listed as the authors' settings."""
    pub = _dict(_dict(results.get("sections")).get("published"))
    if not pub:
        return None
    rows, facts, used = [], [], set()
    for key, value in pub.items():
        names = _PUBLISHED_ALIASES.get(key, (key,))
        m = next((by_name[n] for n in names if n in by_name), None)
        if key.endswith("_std") or m is None or _num(value) is None:
            continue
        name = str(m["name"])
        # the spread published with it: "<key>_std", or "lfw_std" beside "lfw_accuracy"
        std_key = next((k for k in (f"{key}_std", key.rsplit("_", 1)[0] + "_std") if k in pub), None)
        used.update({key, std_key})
        std = _num(pub.get(std_key)) if std_key else None
        measured = _num(m.get("value"))
        bounds = ci_bounds(m)
        pub_text = F.fmt_metric(name, value) + (f" ± {F.fmt_spread(name, std)}" if std is not None else "")
        diff = "" if measured is None else F.fmt_spread(name, measured - float(value))
        if diff and F.metric_unit(name) == "percent":
            diff += " pp"
        inside = "" if bounds is None else ("yes" if bounds[0] <= float(value) <= bounds[1] else "no")
        ci = "" if bounds is None else f"[{F.fmt_metric(name, bounds[0])}, {F.fmt_metric(name, bounds[1])}]"
        rows.append([Cell(F.metric_label(name), title=name), Cell(pub_text, _num(value)),
                     Cell(F.fmt_metric(name, measured), measured), Cell(ci),
                     Cell(("+" if measured is not None and measured >= float(value) else "") + diff),
                     Cell(inside)])
    facts = [KeyValue(F.field_label(k), F.fmt_value(v)) for k, v in pub.items() if k not in used]
    settings = "; ".join(f"{kv.key.lower()} {kv.value}" for kv in facts)
    tables = [Table(
        id="published-vs-measured", caption="Measured here vs published by the model's authors",
        columns=[Column("Metric"), Column("Published", numeric=True), Column("Measured", numeric=True),
                 Column("95% CI (measured)", numeric=True), Column("Difference", numeric=True),
                 Column("Published inside CI")],
        rows=rows,
        note="The published figure comes from the component's spec (its authors' protocol, which may differ: "
             "alignment, flip test, jitter); the measured one from this run's protocol above."
             + (f" Published with: {settings}." if settings else ""),
    )] if rows else []
    if not tables and not facts:
        return None
    return Section("published", "Measured vs published", items=[] if tables else facts, tables=tables)


# ------------------------------------------------------------------ tables
def list_table(key: str, rows: Sequence[Any], *, table_id: str) -> Table | None:
    """A list of flat records (e.g. ``epoch_evals``) as a table, one column per key."""
    recs = [r for r in rows if isinstance(r, dict)]
    if not recs or len(recs) != len(rows):
        return None
    keys = list(dict.fromkeys(k for r in recs for k in r))
    cols = [Column(F.field_label(k), numeric=all(_num(r.get(k)) is not None or r.get(k) is None for r in recs))
            for k in keys]
    body = []
    for r in recs:
        row = []
        for k in keys:
            v = r.get(k)
            if isinstance(v, float) and ("acc" in k or k.endswith(("_rate", "tar", "frr", "eer"))):
                text = F.fmt_percent(v)
            elif isinstance(v, float):
                text = F.fmt_number(v)
            else:
                text = F.fmt_value(v)
            row.append(Cell(text, _num(v) if not isinstance(v, bool) else None))
        body.append(row)
    return Table(id=table_id, caption=F.field_label(key), columns=cols, rows=body)


def far_label(far: float) -> str:
    exp = math.log10(far) if far > 0 else 0
    return f"1e{int(round(exp))}" if far > 0 and abs(exp - round(exp)) < 1e-9 else F.fmt_far(far)
