"""Turn ``results.json`` dicts into the page dataclasses of :mod:`harness.report.context`.

Everything here reads plain dicts (the stored results), never a framework or
a live run: a report can be rebuilt anywhere from the files alone.  Every key
under ``sections`` and ``curves`` is optional; a section appears when its data
is there.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from typing import Any, Iterable, Mapping, Sequence

from markupsafe import Markup

from harness._values import finite_float
from harness.report import _evidence as E
from harness.report import _format as F
from harness.report._bin_suite import suite_grid_section, suite_section
from harness.report._detection_gallery import detection_gallery_section
from harness.report._diagnostics import diagnostic_sections
from harness.report._fddb_roc import fddb_roc_section
from harness.report._identification_grid import identification_grid_plots, identification_grid_section
from harness.report._model_card import add_cost_columns, manifest_grid_section, manifest_section, model_card_section
from harness.report._pipeline_section import pipeline_section
from harness.report._svg import Series, hist_chart, line_chart
from harness.report._tracking import tracking_section
from harness.report.context import (
    Cell,
    Column,
    ComponentCard,
    GridPage,
    ImageStrip,
    IndexGroup,
    IndexPage,
    IndexRow,
    KeyValue,
    Link,
    MetricView,
    RunPage,
    Section,
    Table,
)

#: metric names shown first (headline cards, grid and index columns), in order.
HEADLINE_ORDER = (
    "lfw_accuracy", "accuracy", "tar_at_far_1e-4", "tar_at_far_1e-3", "eer", "auc",
    "rank1", "tpir_at_fpir_1e-2",
    "ap_easy", "ap_medium", "ap_hard", "fddb_tpr_at_fp_1000",
    "acer", "hter", "apcer", "bpcer",
    "psnr", "ssim",
)
#: order of component kinds in a combination's name.
KIND_ORDER = ("detector", "landmarker", "backbone", "loss", "recognizer", "liveness", "inpainter", "dataset")
FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)

_PROTOCOL_FIELDS = (
    ("detector", "Detector"),
    ("alignment", "Alignment template"),
    ("input_size", "Input size"),
    ("flip_test", "Flip test"),
    ("distance", "Distance"),
    ("threshold_rule", "Threshold rule"),
    ("folds", "Folds"),
    ("recognizer", "Recognizer"),
    ("fallbacks", "Fallbacks"),
)
_PROTOCOL_SKIP = {"dataset", "pairs", "synthetic", "synthetic_attacks", "genuine", "impostor"}


def now_text() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_num = finite_float


def safe_href(value: Any) -> str:
    """``value`` when it is an http(s) URL, else "" (no ``javascript:`` links)."""
    text = str(value or "").strip()
    return text if re.fullmatch(r"https?://[^\s\"'<>]+", text) else ""


def _safe_relative(value: Any) -> str:
    """A relative path inside the run folder, or "" (no absolute, no ``..``, no scheme)."""
    text = str(value or "").strip().replace("\\", "/")
    if not text or text.startswith("/") or ":" in text or any(p == ".." for p in text.split("/")):
        return ""
    return text


def safe_name(value: str) -> str:
    """A file name for a grid page."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", value).strip("-.")
    if not name or name != value:
        import hashlib

        name = (name[:40] or "grid") + "-" + hashlib.sha1(value.encode()).hexdigest()[:8]
    return name


# ----------------------------------------------------------------- metrics
def metric_view(m: Mapping[str, Any]) -> MetricView:
    name = str(m.get("name", "?"))
    meta = _dict(m.get("meta"))
    bounds = E.ci_bounds(m)
    ci_text = ""
    if bounds is not None:
        ci_text = f"[{F.fmt_metric(name, bounds[0], meta)}, {F.fmt_metric(name, bounds[1], meta)}]"
    spread = F.fmt_spread(name, m.get("std"), meta)
    return MetricView(
        name=name,
        label=F.metric_label(name),
        value=_num(m.get("value")),
        text=F.fmt_metric(name, m.get("value"), meta),
        spread=f"± {spread}" if spread else "",
        ci=ci_text,
        direction=str(m.get("direction", "higher")),
        convention=str(m.get("convention", "") or ""),
        ci_note=E.ci_note(_dict(meta.get("ci"))),
    )


def _metrics(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [m for m in _list(results.get("metrics")) if isinstance(m, dict) and "name" in m]


def headline_names(metrics: Sequence[Mapping[str, Any]], limit: int = 6, *, defined_only: bool = False) -> list[str]:
    """The metrics worth showing large: flagged ``meta.headline``, then known
    headline names, then the first others, ``limit`` at most.  With
    ``defined_only``, metrics without a value (n/a) are left out."""
    if defined_only:
        metrics = [m for m in metrics if _num(m.get("value")) is not None]
    names = [str(m["name"]) for m in metrics]
    flagged = [str(m["name"]) for m in metrics if _dict(m.get("meta")).get("headline")]
    # TAR@FAR: the most stringent target the data can measure, not a fixed one that may be n/a
    tar = E.measurable_tar_names(metrics)
    known = [n for n in HEADLINE_ORDER if n in names and not n.startswith("tar_at_far_")]
    known[1:1] = [n for n in tar if n not in known]
    picked = list(dict.fromkeys(flagged + known))
    if len(picked) < 4:
        picked += [n for n in names if n not in picked][: 4 - len(picked)]
    return picked[:limit]


# ----------------------------------------------------------------- pieces
def combination(results: Mapping[str, Any]) -> dict[str, str]:
    """kind → component name, from the config (or the component descriptions)."""
    prov = _dict(results.get("provenance"))
    comps = _dict(_dict(prov.get("config")).get("components"))
    if not comps:
        comps = {k: _dict(v).get("name", "?") for k, v in _dict(prov.get("components")).items()}
    ordered = {k: str(comps[k]) for k in KIND_ORDER if k in comps}
    ordered.update((str(k), str(v)) for k, v in comps.items() if k not in ordered)
    return ordered


def combination_text(results: Mapping[str, Any]) -> str:
    combo = combination(results)
    return " · ".join(v for k, v in combo.items() if k != "dataset") or str(results.get("task", "run"))


def dataset_text(protocol: Mapping[str, Any]) -> str:
    ds = protocol.get("dataset")
    text = F.fmt_value(ds) if ds not in (None, "") else "unspecified data"
    pairs = _num(protocol.get("pairs"))
    if pairs is not None:
        text += f" — {F.fmt_count(pairs)} pairs"
    return text


def is_synthetic(results: Mapping[str, Any]) -> bool:
    return bool(_dict(results.get("protocol")).get("synthetic"))


def protocol_box(results: Mapping[str, Any]) -> list[KeyValue]:
    protocol = _dict(results.get("protocol"))
    counts = _dict(_dict(results.get("sections")).get("counts"))
    items = []
    ds = dataset_text(protocol)
    gen = _num(counts.get("genuine") if counts else protocol.get("genuine"))
    imp = _num(counts.get("impostor") if counts else protocol.get("impostor"))
    if gen is not None and imp is not None:
        if _num(protocol.get("pairs")) is None:
            ds += f" — {F.fmt_count(gen + imp)} pairs"
        ds += f" ({F.fmt_count(gen)} genuine / {F.fmt_count(imp)} impostor)"
    items.append(KeyValue("Dataset", ds, mono=False))
    evaluated = _evaluated_on(results)
    if evaluated:
        items.append(KeyValue("Evaluated on", evaluated))
    for key, label in _PROTOCOL_FIELDS:
        if key in protocol:
            items.append(KeyValue(label, F.fmt_value(protocol[key])))
    for key, value in protocol.items():
        if key in _PROTOCOL_SKIP or key in dict(_PROTOCOL_FIELDS) or key == "intervals":
            continue
        if key == "name":
            value = _protocol_name(results, value)
        items.append(KeyValue(F.field_label(key), F.fmt_value(value)))
    ci = E.intervals_text(results)
    if ci:
        items.append(KeyValue("Confidence intervals", ci))
    return items


def _evaluated_on(results: Mapping[str, Any]) -> str:
    """What part of a multi-fold dataset a run evaluated (``--eval-folds``), or ""."""
    protocol = _dict(results.get("protocol"))
    chosen = _list(_dict(_dict(results.get("provenance")).get("config")).get("eval_folds"))
    if not chosen:
        return ""
    pairs = _num(protocol.get("pairs"))
    folds = ", ".join(str(f) for f in chosen)
    text = f"fold{'s' if len(chosen) > 1 else ''} {folds} only (0-based)"
    if pairs is not None:
        text += f": {F.fmt_count(pairs)} pairs"
    cv = str(protocol.get("cv_folds") or "")
    if "sub-fold" in cv:
        text += "; accuracy cross-validated over stratified sub-folds of these pairs"
    return text


def _protocol_name(results: Mapping[str, Any], name: Any) -> Any:
    """The protocol's name as it applies to this run: a full-dataset name
    ("LFW View 2 (6,000 pairs, 10 folds)") marked as the dataset's when only some
    folds were evaluated, and a detection subset name widened to the subsets its
    AP covers."""
    text = str(name or "")
    if _evaluated_on(results) and re.search(r"\bfolds?\b", text):
        return f"{text} — the full dataset; this run used part of it (see Evaluated on)"
    ap = _dict(_dict(_dict(results.get("sections")).get("detection")).get("ap"))
    if len(ap) > 1:
        subsets = " / ".join(str(k) for k in ap)
        text, n = re.subn(r"\b(easy|medium|hard)\b", subsets, text, count=1)
        return text if n else f"{text} ({subsets} subsets)"
    return name


def _lfw_table(lfw: Mapping[str, Any], sub_folds: str = "") -> Table | None:
    """Per-fold accuracy; ``sub_folds`` (the protocol's ``cv_folds`` statement) when the
    folds are stratified sub-folds of one dataset fold, not the dataset's folds."""
    folds = [f for f in _list(lfw.get("folds")) if isinstance(f, dict)]
    if not folds and lfw.get("mean") is None:
        return None
    rows = [
        [
            Cell(str(f.get("fold", i + 1)), _num(f.get("fold", i + 1))),
            Cell(F.fmt_percent(f.get("accuracy")), _num(f.get("accuracy"))),
            Cell(F.fmt_threshold(f.get("threshold")), _num(f.get("threshold"))),
        ]
        for i, f in enumerate(folds)
    ]
    std = _num(lfw.get("std"))
    mean_text = F.fmt_percent(lfw.get("mean"))
    footer = [[
        Cell("Mean ± std"),
        Cell(mean_text, _num(lfw.get("mean")), note=f"± {std * 100:.2f}" if std is not None else ""),
        Cell(""),
    ]]
    n = len(folds)
    caption = f"LFW protocol: {n}-fold accuracy" if n else "LFW protocol accuracy"
    if sub_folds:
        caption = f"Accuracy over {n} stratified sub-folds of the evaluated pairs"
    return Table(
        id="lfw-folds",
        caption=caption,
        columns=[Column("Sub-fold" if sub_folds else "Fold", numeric=True), Column("Accuracy", numeric=True),
                 Column("Threshold", numeric=True)],
        rows=rows,
        footer=footer,
        note=(
            f"The threshold of each fold is chosen on the other {n - 1} folds and accuracy is "
            "measured on the held-out fold; mean ± standard deviation over folds."
            + (f" Sub-folds, not the dataset's folds: {sub_folds}." if sub_folds else "")
            if n > 1 else ""
        ),
    )


def _far_label(far: float) -> str:
    exp = math.log10(far) if far > 0 else 0
    return f"1e{int(round(exp))}" if far > 0 and abs(exp - round(exp)) < 1e-9 else F.fmt_far(far)


def _tar_table(rows_in: list[dict[str, Any]], n_impostor: float | None,
               by_name: Mapping[str, Mapping[str, Any]] | None = None) -> Table | None:
    rows_in = [r for r in rows_in if isinstance(r, dict) and _num(r.get("far")) is not None]
    if not rows_in:
        return None
    rows_in.sort(key=lambda r: float(r["far"]))
    rules = sorted({str(r.get("rule")) for r in rows_in if r.get("rule")})
    rows = []
    any_na = False
    metrics = by_name or {}
    with_ci = any(E.ci_bounds(m) for n, m in metrics.items() if n.startswith("tar_at_far_"))
    with_far = any(_num(r.get("far_achieved")) is not None for r in rows_in)
    for r in rows_in:
        far = float(r["far"])
        defined = r.get("defined", True) and _num(r.get("tar")) is not None
        if n_impostor and far < 1.0 / n_impostor:
            defined = False
        any_na |= not defined
        row = [
            Cell(_far_label(far), far),
            Cell(F.fmt_percent(r.get("tar")) if defined else F.NA, _num(r.get("tar")) if defined else None,
                 title="" if defined else "FAR target below 1/N_impostor: not measurable"),
        ]
        if with_ci:
            m = metrics.get(f"tar_at_far_{_far_label(far)}") or {}
            b = E.ci_bounds(m) if defined else None
            row.append(Cell(f"[{F.fmt_percent(b[0])}, {F.fmt_percent(b[1])}]" if b else "—",
                            title=E.ci_note(_dict(_dict(m.get("meta")).get("ci")))))
        if with_far:
            row.append(Cell(F.fmt_far(r.get("far_achieved")) if defined else F.NA,
                            _num(r.get("far_achieved")) if defined else None))
        row.append(Cell(F.fmt_threshold(r.get("threshold")) if defined else F.NA,
                        _num(r.get("threshold")) if defined else None))
        rows.append(row)
    note = f"Rule: {'; '.join(rules)}." if rules else ""
    if any_na:
        limit = f" (1/N_impostor = {F.fmt_far(1.0 / n_impostor)})" if n_impostor else ""
        note += f" n/a: the FAR target is below 1/N_impostor{limit}, so it cannot be measured."
    columns = [Column("FAR target", numeric=True), Column("TAR", numeric=True)]
    if with_ci:
        columns.append(Column("95% CI", numeric=True))
    if with_far:
        columns.append(Column("Realised FAR", numeric=True, title="FAR at the chosen threshold (at most the target)"))
    columns.append(Column("Threshold", numeric=True))
    return Table(id="tar-at-far", caption="TAR @ FAR", columns=columns, rows=rows, note=note.strip())


def _op_table(ops: list[dict[str, Any]]) -> Table | None:
    ops = [o for o in ops if isinstance(o, dict)]
    if not ops:
        return None
    rows = [
        [
            Cell(_op_label(o.get("name")), title=str(o.get("name", ""))),
            Cell(F.fmt_threshold(o.get("threshold")), _num(o.get("threshold"))),
            Cell(F.fmt_far(o.get("far")), _num(o.get("far"))),
            Cell(F.fmt_percent(o.get("frr")), _num(o.get("frr"))),
        ]
        for o in ops
    ]
    return Table(
        id="operating-points",
        caption="FAR and FRR at chosen thresholds",
        columns=[Column("Threshold chosen for"), Column("Threshold", numeric=True),
                 Column("Realised FAR", numeric=True), Column("FRR", numeric=True)],
        rows=rows,
        note="A pair is accepted when its score is at or above the threshold. A FAR target's threshold is the "
             "lowest whose FAR stays at or below the target (strict rule), so the realised FAR can be well below "
             "the target — it is what the threshold gives on these pairs.",
    )


def _op_label(name: Any) -> str:
    """``far_1e-1`` → ``FAR target ≤ 1e-1``, ``eer`` → ``EER (FAR = FRR)``; other names as stored."""
    text = str(name or "?")
    m = re.fullmatch(r"far_(.+)", text)
    if m:
        return f"FAR target ≤ {m.group(1)}"
    return {"eer": "EER (FAR = FRR)"}.get(text.lower(), text)


def _kv_items(d: Mapping[str, Any], *, percent: Iterable[str] = ()) -> list[KeyValue]:
    pct = set(percent)
    out = []
    for k, v in d.items():
        if isinstance(v, (dict, list)) and k not in pct:
            text = F.fmt_value(v)
        elif k in pct:
            text = F.fmt_percent(v)
        elif isinstance(v, float):
            text = F.fmt_metric(k, v)
        else:
            text = F.fmt_value(v)
        out.append(KeyValue(F.field_label(k), text))
    return out


def _curve(d: Any, xkey: str, ykey: str) -> tuple[list[Any], list[Any]] | None:
    d = _dict(d)
    xs, ys = _list(d.get(xkey)), _list(d.get(ykey))
    n = min(len(xs), len(ys))
    return (xs[:n], ys[:n]) if n else None


def _far_floor(xs: Iterable[Any]) -> float:
    pos = [v for v in (_num(x) for x in xs) if v is not None and v > 0]
    if not pos:
        return 1e-6
    return max(1e-6, 10 ** math.floor(math.log10(min(pos)) + 1e-9))


def _tar_floor(series: list[Series], far_floor: float) -> float:
    """The lower end of a zoomed TAR axis: the lowest TAR (band included) any
    curve reaches within the plotted FAR range, rounded down to a step of 0.05
    (0.01 above 0.95), so good models do not flatten into the top edge."""
    lows = []
    for s in series:
        pts = [(_num(x), _num(y)) for x, y in zip(s.x, s.y)]
        lows += [y for x, y in pts if x is not None and y is not None and x >= far_floor]
        if s.band is not None:
            lows += [v for x, v in zip(s.band[0], s.band[1]) if _num(x) is not None and _num(v) is not None
                     and float(x) >= far_floor]
    if not lows:
        return 0.0
    lo = min(lows)
    step = 0.01 if lo > 0.95 else 0.05
    return max(0.0, math.floor(lo / step - 1e-9) * step)


def roc_plot(series: list[Series], caption: str = "") -> Markup:
    floor = _far_floor(x for s in series for x in s.x)
    ylo = _tar_floor(series, floor)
    zoom = f" TAR axis zoomed to [{ylo:.2f}, 1]." if ylo > 0 else ""
    return line_chart(
        series, kind="roc", title="ROC", x_label="False accept rate (FAR, log)",
        y_label="True accept rate (TAR)", x_log=True, x_lim=(floor, 1.0), y_lim=(ylo, 1.0),
        caption=(caption or "TAR against FAR, log FAR axis.") + zoom,
    )


def _verification_sections(results: Mapping[str, Any]) -> list[Section]:
    sections = _dict(results.get("sections"))
    curves = _dict(results.get("curves"))
    counts = _dict(sections.get("counts"))
    out: list[Section] = []
    tables = []
    cv = str(_dict(results.get("protocol")).get("cv_folds") or "")
    t = _lfw_table(_dict(sections.get("lfw")), cv if "sub-fold" in cv else "")
    if t:
        tables.append(t)
    n_imp = _num(counts.get("impostor"))
    t = _tar_table(_list(sections.get("tar_at_far")), n_imp, {str(m["name"]): m for m in _metrics(results)})
    if t:
        tables.append(t)
    t = _op_table(_list(sections.get("operating_points")))
    if t:
        tables.append(t)
    items = []
    for key, label in (("genuine", "Genuine pairs"), ("impostor", "Impostor pairs")):
        if _num(counts.get(key)) is not None:
            items.append(KeyValue(label, F.fmt_count(counts[key])))
    if tables or items:
        out.append(Section("verification", "Verification", items=items, tables=tables))

    plots: list[Markup] = []
    band_note = E.band_caption(curves)
    roc = _curve(curves.get("roc"), "far", "tar")
    if roc:
        plots.append(roc_plot([Series("", *roc, band=E.roc_band(curves))],
                              caption="TAR against FAR, log FAR axis." + band_note))
    det = _curve(curves.get("det"), "far", "frr")
    if det:
        floor = _far_floor(det[0])
        band = E.det_band(curves)
        plots.append(line_chart(
            [Series("", *det, band=band)], kind="det", title="DET", x_label="False accept rate (FAR, log)",
            y_label="False reject rate (FRR, log)", x_log=True, y_log=True,
            x_lim=(floor, 1.0), y_lim=(_far_floor([*det[1], *(band[1] if band else [])]), 1.0),
            caption="FRR against FAR, both axes log." + band_note,
        ))
    hist = _dict(curves.get("hist"))
    hists = []
    for key, label in (("genuine", "genuine"), ("impostor", "impostor")):
        h = _dict(hist.get(key))
        if _list(h.get("edges")) and _list(h.get("counts")):
            hists.append((label, h["edges"], h["counts"]))
    if hists:
        plots.append(hist_chart(hists, kind="hist", title="Score distributions", x_label="score",
                                caption="Genuine and impostor scores, each normalised to area 1."))
    if plots:
        out.append(Section("curves", "Curves", plots=plots))
    return out


def _training_section(results: Mapping[str, Any]) -> Section | None:
    info = _dict(_dict(results.get("sections")).get("training"))
    tr = _dict(_dict(results.get("curves")).get("training"))
    steps = _list(tr.get("step"))
    plots = []
    for key, title, ylabel in (("loss", "Training loss", "loss"), ("accuracy", "Training accuracy", "accuracy"),
                               ("lr", "Learning rate", "learning rate")):
        ys = _list(tr.get(key))
        if not ys:
            continue
        xs = steps[: len(ys)] if steps else list(range(len(ys)))
        pos = [v for v in (_num(y) for y in ys) if v is not None and v > 0]
        log = key == "lr" and pos and max(pos) / min(pos) > 100
        plots.append(line_chart([Series("", xs, ys[: len(xs)])], kind=f"training-{key}", title=title,
                                x_label="step", y_label=ylabel, y_log=bool(log)))
    if not plots and not info:
        return None
    tables = []
    for key in [k for k, v in info.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]:
        t = E.list_table(key, info[key], table_id=f"training-{key.replace('_', '-')}")
        if t:
            tables.append(t)
    items = _kv_items({k: v for k, v in info.items() if not any(t.id == f"training-{k.replace('_', '-')}"
                                                                   for t in tables)})
    return Section("training", "Training", items=items, tables=tables, plots=plots)


def _detection_section(results: Mapping[str, Any]) -> Section | None:
    det = _dict(_dict(results.get("sections")).get("detection"))
    pr = _dict(_dict(results.get("curves")).get("pr"))
    if not det and not pr:
        return None
    tables, plots = [], []
    ap = _dict(det.get("ap"))
    if ap:
        by_name = {str(m["name"]): m for m in _metrics(results)}
        with_ci = any(E.ci_bounds(by_name.get(f"ap_{k}", {})) for k in ap)
        rows = []
        for k, v in ap.items():
            row = [Cell(str(k)), Cell(F.fmt_percent(v), _num(v))]
            if with_ci:
                m = by_name.get(f"ap_{k}", {})
                b = E.ci_bounds(m)
                row.append(Cell(f"[{F.fmt_percent(b[0])}, {F.fmt_percent(b[1])}]" if b else "—",
                                title=E.ci_note(_dict(_dict(m.get("meta")).get("ci")))))
            rows.append(row)
        tables.append(Table(
            id="detection-ap", caption="Average precision (IoU 0.5)",
            columns=[Column("Subset"), Column("AP", numeric=True)] + ([Column("95% CI", numeric=True)] if with_ci
                                                                      else []),
            rows=rows,
        ))
    series = []
    for subset, c in pr.items():
        xy = _curve(c, "recall", "precision")
        if xy:
            series.append(Series(str(subset), *xy))
    if series:
        plots.append(line_chart(series, kind="pr", title="Precision–recall", x_label="recall",
                                y_label="precision", x_lim=(0.0, 1.0), y_lim=(0.0, 1.0),
                                caption="One curve per subset; every subset scores the same detections."))
    items = _kv_items(_dict(det.get("speed")))
    extra = {k: v for k, v in det.items() if k not in ("ap", "speed")}
    items += _kv_items(extra)
    return Section("detection", "Detection", items=items, tables=tables, plots=plots)


def _landmarks_section(results: Mapping[str, Any]) -> Section | None:
    """NME table (point set x normaliser), CED plot and the sample-size note of a landmarks run."""
    lm = _dict(_dict(results.get("sections")).get("landmarks"))
    if not lm:
        return None
    rows = []
    for label, by_kind in _dict(lm.get("table")).items():
        for kind, row in _dict(by_kind).items():
            row = _dict(row)
            fails = _dict(row.get("failure_rate"))
            rows.append([Cell(str(label)), Cell(str(kind)),
                         Cell(F.fmt_number(row.get("nme"), 4), _num(row.get("nme"))),
                         Cell(F.fmt_number(row.get("auc"), 3), _num(row.get("auc")))]
                        + [Cell(F.fmt_percent(fails.get(t)), _num(fails.get(t))) for t in ("0.08", "0.10")]
                        + [Cell(str(row.get("missed", 0)), _num(row.get("missed")))])
    tables = [Table(id="landmarks-nme", caption="NME by point set and normaliser",
                    columns=[Column("Points"), Column("Normaliser"), Column("NME", numeric=True, best="lower"),
                             Column("AUC@0.08", numeric=True, best="higher"),
                             Column("Failures @0.08", numeric=True), Column("Failures @0.10", numeric=True),
                             Column("Missed", numeric=True)], rows=rows)] if rows else []
    yaw = [_dict(r) for r in _list(lm.get("by_yaw"))]
    if yaw:
        tables.append(Table(id="landmarks-yaw", caption=f"NME ({lm.get('normaliser', '')}) by |yaw| (degrees)",
                            columns=[Column("|yaw|"), Column("Faces", numeric=True), Column("NME", numeric=True)],
                            rows=[[Cell(str(r.get("yaw"))), Cell(str(r.get("faces")), _num(r.get("faces"))),
                                   Cell(F.fmt_number(r.get("nme"), 4), _num(r.get("nme")))] for r in yaw]))
    series = [Series(str(k), *xy) for k, c in _dict(_dict(results.get("curves")).get("ced")).items()
              if (xy := _curve(c, "x", "y"))]
    plots = [line_chart(series, kind="ced", title="Cumulative error distribution", x_label="NME",
                        y_label="fraction of faces", y_lim=(0.0, 1.0))] if series else []
    notes = [f"Evaluated on {lm['sample']}."] if lm.get("sample") else []
    items = _kv_items({k: lm[k] for k in ("landmarker_scheme", "annotation_scheme", "normaliser", "missed")
                       if k in lm}) + _kv_items(_dict(lm.get("point_sets"))) + _kv_items(_dict(lm.get("speed")))
    return Section("landmarks", "Landmarks", notes=notes, items=items, tables=tables, plots=plots)


def _liveness_section(results: Mapping[str, Any]) -> Section | None:
    lv = _dict(_dict(results.get("sections")).get("liveness"))
    if not lv:
        return None
    protocol = _dict(results.get("protocol"))
    notes = []
    if protocol.get("synthetic_attacks") or protocol.get("attacks") == "synthetic":
        notes.append(
            "The attacks in this run are synthesized (printed/replayed imitations made by "
            "facebench): they are no substitute for a real presentation-attack (PAD) database."
        )
    tables = []
    species = _dict(lv.get("apcer_per_species"))
    if species:
        vals = {k: _num(v) for k, v in species.items()}
        worst = max((v for v in vals.values() if v is not None), default=None)
        tables.append(Table(
            id="apcer-species", caption="APCER per attack species",
            columns=[Column("Attack species"), Column("APCER", numeric=True, best="lower")],
            rows=[[Cell(str(k)), Cell(F.fmt_percent(v), vals[k], title="worst species" if vals[k] == worst else "")]
                  for k, v in species.items()],
            note="The reported APCER is the maximum over attack species (ISO/IEC 30107-3).",
        ))
    items = []
    for key, label in (("apcer", "APCER (max over species)"), ("bpcer", "BPCER"), ("acer", "ACER"),
                       ("hter", "HTER")):
        if key in lv:
            items.append(KeyValue(label, F.fmt_percent(lv[key])))
    if "threshold" in lv:
        items.append(KeyValue("Threshold", F.fmt_threshold(lv["threshold"])))
    if "threshold_source" in lv:
        items.append(KeyValue("Threshold source", F.fmt_value(lv["threshold_source"])))
    known = {"apcer_per_species", "apcer", "bpcer", "acer", "hter", "threshold", "threshold_source"}
    items += _kv_items({k: v for k, v in lv.items() if k not in known})
    return Section("liveness", "Liveness (presentation-attack detection)", notes=notes, items=items, tables=tables)


def _inpainting_section(results: Mapping[str, Any]) -> Section | None:
    ip = _dict(_dict(results.get("sections")).get("inpainting"))
    if not ip:
        return None
    items = []
    if "psnr" in ip:
        items.append(KeyValue("PSNR (restored vs clean)", F.fmt_metric("psnr", ip["psnr"])))
    if "ssim" in ip:
        items.append(KeyValue("SSIM (restored vs clean)", F.fmt_metric("ssim", ip["ssim"])))
    tables = []
    ver = _dict(ip.get("verification"))
    nested = {k: v for k, v in ver.items() if isinstance(v, dict)}
    if nested:
        cols = list(nested)
        keys = list(dict.fromkeys(k for v in nested.values() for k in v))
        tables.append(Table(
            id="inpainting-verification", caption="Verification before and after inpainting",
            columns=[Column("Metric")] + [Column(c.replace("_", " "), numeric=True) for c in cols],
            rows=[[Cell(F.metric_label(k))] + [Cell(F.fmt_metric(k, nested[c].get(k)), _num(nested[c].get(k)))
                                               for c in cols] for k in keys],
        ))
    items += _kv_items({k: v for k, v in ver.items() if k not in nested})
    strips = []
    samples = [s for s in (_safe_relative(p) for p in _list(ip.get("samples"))) if s]
    if samples:
        strips.append(ImageStrip("Samples", [Link(s.rsplit("/", 1)[-1], s) for s in samples]))
    items += _kv_items({k: v for k, v in ip.items() if k not in ("psnr", "ssim", "verification", "samples")})
    return Section("inpainting", "Inpainting", items=items, tables=tables, strips=strips)


def _rank_table(ident: Mapping[str, Any], by_name: Mapping[str, Mapping[str, Any]] | None = None) -> Table | None:
    rows_in = [r for r in _list(ident.get("rank")) if isinstance(r, dict) and _num(r.get("k")) is not None]
    if not rows_in:
        return None
    metrics = by_name or {}
    with_ci = any(E.ci_bounds(metrics.get(f"rank{int(r['k'])}", {})) for r in rows_in)
    rows = []
    for r in rows_in:
        row = [Cell(f"rank-{int(r['k'])}", _num(r["k"])),
               Cell(F.fmt_percent(r.get("mean")), _num(r.get("mean")), note=f"± {F.fmt_percent(r.get('std'))}")]
        if with_ci:
            m = metrics.get(f"rank{int(r['k'])}", {})
            b = E.ci_bounds(m)
            row.append(Cell(f"[{F.fmt_percent(b[0])}, {F.fmt_percent(b[1])}]" if b else "—",
                            title=E.ci_note(_dict(_dict(m.get("meta")).get("ci")))))
        rows.append(row)
    return Table(id="rank-k", caption="Closed-set identification: rank-k",
                 columns=[Column("Rank", numeric=True), Column("Identification rate", numeric=True)]
                 + ([Column("95% CI", numeric=True)] if with_ci else []), rows=rows,
                 note="Mean ± standard deviation over the trials; ties count against the probe.")


def _open_set_table(open_set: Mapping[str, Any]) -> Table | None:
    rows_in = [r for r in _list(open_set.get("table")) if isinstance(r, dict) and _num(r.get("fpir_target"))]
    if not rows_in:
        return None
    rows = []
    for r in rows_in:
        ok = bool(r.get("defined", True)) and _num(r.get("fnir")) is not None
        na = "FPIR target below 1 / non-mated searches: not measurable"
        rows.append([Cell(_far_label(float(r["fpir_target"])), _num(r["fpir_target"]))] + [
            Cell(F.fmt_percent(r.get(k)) if ok else F.NA, _num(r.get(k)) if ok else None, title="" if ok else na)
            for k in ("fnir", "tpir", "rank1_hit_rate")] + [
            Cell(F.fmt_threshold(r.get("threshold")) if ok else F.NA, _num(r.get("threshold")) if ok else None)])
    return Table(id="fnir-at-fpir", caption="Open-set identification: FNIR @ FPIR",
                 columns=[Column("FPIR target", numeric=True), Column("FNIR", numeric=True, best="lower"),
                          Column("TPIR", numeric=True, best="higher"), Column("Rank-1 hit rate", numeric=True),
                          Column("Threshold", numeric=True)], rows=rows,
                 note=f"Candidate list L = {open_set.get('candidate_list', '?')}; a search passes when its score "
                      "is at or above the threshold (NIST FRVT 1:N definitions).")


def _template_search_table(galleries: Mapping[str, Any]) -> Table | None:
    """IJB 1:N: rank-k and TPIR @ FPIR per gallery (``sections.ijb_identification``)."""
    rows = []
    for name, g in galleries.items():
        g = _dict(g)
        tpir = {float(p["fpir"]): p for p in _list(g.get("tpir_at_fpir")) if isinstance(p, dict) and "fpir" in p}
        cells = [Cell(str(name)), Cell(F.fmt_count(g.get("mated")), _num(g.get("mated")))]
        cells += [Cell(F.fmt_percent(g.get(f"rank{k}")), _num(g.get(f"rank{k}"))) for k in (1, 5, 10)]
        for t in (1e-2, 1e-1):
            p = _dict(tpir.get(t))
            ok = bool(p.get("defined")) and _num(p.get("tpir")) is not None
            cells.append(Cell(F.fmt_percent(p.get("tpir")) if ok else F.NA, _num(p.get("tpir")) if ok else None))
        rows.append(cells)
    if not rows:
        return None
    return Table(id="template-search", caption="1:N template search per gallery",
                 columns=[Column("Gallery"), Column("Mated probes", numeric=True), Column("Rank-1", numeric=True),
                          Column("Rank-5", numeric=True), Column("Rank-10", numeric=True),
                          Column("TPIR @ FPIR 1e-2", numeric=True), Column("TPIR @ FPIR 1e-1", numeric=True)],
                 rows=rows, note="Probes are searched against each gallery separately; TPIR at rank 1.")


def _identification_section(results: Mapping[str, Any]) -> Section | None:
    """Closed-set rank-k and CMC, open-set FNIR @ FPIR and DET (``--protocol identification|open-set|all``),
    and IJB template search per gallery."""
    sections, curves = _dict(results.get("sections")), _dict(results.get("curves"))
    ident, open_set = _dict(sections.get("identification")), _dict(sections.get("open_set"))
    templates = _dict(sections.get("ijb_identification"))
    if not (ident or open_set or templates):
        return None
    by_name = {str(m["name"]): m for m in _metrics(results)}
    tables = [t for t in (_rank_table(ident, by_name), _open_set_table(open_set), _template_search_table(templates))
              if t]
    items, notes = [], [str(n) for n in _list(sections.get("identification_notes"))]
    for label, d in (("Closed set", ident), ("Open set", open_set)):
        if d:
            counts = ", ".join(f"{k.replace('_', ' ')} {F.fmt_count(d[k])}" for k in (
                "trials", "gallery_identities", "gallery_images", "probes", "unknown_identities", "mated_searches",
                "nonmated_searches") if _num(d.get(k)) is not None)
            items.append(KeyValue(label, counts))
            items += [KeyValue(k.replace("_", " ").capitalize(), F.fmt_value(v))
                      for k, v in _dict(d.get("protocol")).items()]
    plots: list[Markup] = []
    c = _curve(curves.get("cmc"), "rank", "rate")
    if c:
        plots.append(line_chart([Series("", *c)], kind="cmc", title="CMC", x_label="Rank",
                                y_label="Identification rate", y_lim=(0.0, 1.0),
                                caption="Share of probes whose mate is within rank k (mean over trials)."))
    d = _curve(curves.get("open_set_det"), "fpir", "fnir")
    if d:
        plots.append(line_chart([Series("", *d)], kind="open-set-det", title="Open-set DET",
                                x_label="False positive identification rate (FPIR)",
                                y_label="False negative identification rate (FNIR)", x_log=True, y_log=True,
                                x_lim=(_far_floor(d[0]), 1.0), y_lim=(_far_floor(d[1]), 1.0),
                                caption="FNIR against FPIR over thresholds, both axes log (first trial)."))
    return Section("identification", "Identification (1:N)", notes=notes, items=items, tables=tables, plots=plots)


def _skipped_section(results: Mapping[str, Any]) -> Section | None:
    """What ``--skip-bad`` left out: counts, the rule, and the items listed in results.json."""
    sk = _dict(_dict(results.get("sections")).get("skipped"))
    if not sk:
        return None
    items = [i for i in _list(sk.get("items")) if isinstance(i, dict)]
    count = _num(sk.get("count")) or 0
    notes = [str(sk.get("rule") or "")] if sk.get("rule") else []
    if count > len(items):
        notes.append(f"{len(items)} of {F.fmt_count(count)} skipped items listed (all are in results.json's count).")
    tables = [Table(
        id="skipped-items", caption="Skipped items",
        columns=[Column("Dataset"), Column("Item"), Column("Reason")],
        rows=[[Cell(str(i.get("dataset", ""))), Cell(str(i.get("item", ""))), Cell(str(i.get("reason", "")))]
              for i in items],
    )] if items else []
    return Section("skipped", "Skipped items (--skip-bad)", notes=notes,
                   items=_kv_items({"skipped": count, "pairs_dropped": sk.get("pairs_dropped")}), tables=tables)


def _metrics_section(metrics: list[dict[str, Any]]) -> Section | None:
    if not metrics:
        return None
    views = [metric_view(m) for m in metrics]
    with_ci = any(v.ci for v in views)
    with_conv = any(v.convention for v in views)
    rows = []
    for v in views:
        row = [Cell(v.label, title=v.name), Cell(v.text, v.value, note=v.spread)]
        if with_ci:
            row.append(Cell(v.ci, title=v.ci_note))
        row.append(Cell("higher ↑" if v.direction == "higher" else "lower ↓"))
        if with_conv:
            row.append(Cell(v.convention))
        rows.append(row)
    columns = [Column("Metric"), Column("Value", numeric=True)]
    if with_ci:
        columns.append(Column("95% CI", numeric=True))
    columns.append(Column("Better"))
    if with_conv:
        columns.append(Column("Convention"))
    return Section("metrics", "All metrics", tables=[Table(
        id="metrics", caption="Every metric of this run", columns=columns, rows=rows,
    )])


def _fmt_big(n: Any, unit: str) -> str:
    f = _num(n)
    if f is None:
        return F.fmt_value(n)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(f) >= div:
            return f"{f / div:.2f} {suffix}{unit}".rstrip()
    return f"{f:g} {unit}".rstrip()


def component_cards(results: Mapping[str, Any]) -> list[ComponentCard]:
    prov = _dict(results.get("provenance"))
    described = _dict(prov.get("components"))
    combo = combination(results)
    kinds = list(dict.fromkeys([k for k in KIND_ORDER if k in described or k in combo] + list(described)))
    cards = []
    for kind in kinds:
        d = _dict(described.get(kind))
        meta = _dict(d.get("meta"))
        facts = []
        if d.get("framework"):
            facts.append(KeyValue("Framework", str(d["framework"])))
        params = next((meta[k] for k in ("params", "num_params", "parameters") if k in meta), None)
        if params is not None:
            facts.append(KeyValue("Params", _fmt_big(params, "")))
        macs = next((meta[k] for k in ("macs", "MACs", "flops") if k in meta), None)
        if macs is not None:
            facts.append(KeyValue("MACs", _fmt_big(macs, "")))
        for key, label in (("input_size", "Input size"), ("embedding_size", "Embedding size"),
                           ("alignment", "Alignment"), ("distance", "Distance")):
            if d.get(key) not in (None, "", [], ()):
                facts.append(KeyValue(label, F.fmt_value(d[key])))
        if d.get("license"):
            facts.append(KeyValue("Licence", str(d["license"])))
        scratch = _from_scratch(prov, kind, str(d.get("name", combo.get(kind, ""))))
        if scratch:
            facts.append(KeyValue("Weights", scratch))
        for w in [] if scratch else _list(d.get("weights")):
            w = _dict(w)
            if w.get("filename"):
                text = str(w["filename"]) + (f" ({w['license']})" if w.get("license") else " (licence not stated)")
                facts.append(KeyValue("Weights", text, href=safe_href(w.get("source"))))
        opts = _dict(_dict(_dict(prov.get("config")).get("options")).get(str(d.get("name", combo.get(kind, "")))))
        if opts:
            facts.append(KeyValue("Options", ", ".join(f"{k}={F.fmt_value(v)}" for k, v in opts.items()), mono=True))
        paper = str(d.get("paper", "") or "")
        cards.append(ComponentCard(
            kind=kind, name=str(d.get("name") or combo.get(kind, "?")), summary=str(d.get("summary", "") or ""),
            paper=paper, paper_href=safe_href(paper), facts=facts,
        ))
    return cards


def _from_scratch(prov: Mapping[str, Any], kind: str, name: str) -> str:
    """For a backbone trained in this run from its initialisation (a loss, no
    ``weights`` option, no ``init`` checkpoint), the text that replaces the
    spec's pretrained weights; "" otherwise."""
    config = _dict(prov.get("config"))
    comps = _dict(config.get("components"))
    if kind != "backbone" or "loss" not in comps or not config.get("train"):
        return ""
    if _dict(_dict(config.get("options")).get(name)).get("weights"):
        return ""
    init = _dict(config.get("training")).get("init")
    if init:
        return f"initialised from {init}, then trained in this run"
    return "none: trained from scratch in this run (the pretrained weights of its spec were not used)"


def environment(results: Mapping[str, Any]) -> list[KeyValue]:
    prov = _dict(results.get("provenance"))
    versions = _dict(prov.get("versions"))
    hw = _dict(prov.get("hardware"))
    git = prov.get("git")
    items = [KeyValue("facebench", str(versions.get("facebench") or "unknown"))]
    if isinstance(git, dict) and git.get("commit"):
        items.append(KeyValue("Git commit", str(git["commit"])[:12] + (" (uncommitted changes)" if git.get("dirty") else ""),
                              mono=True))
    else:
        items.append(KeyValue("Git commit", "not a git checkout"))
    if "seed" in prov:
        items.append(KeyValue("Seed", F.fmt_value(prov["seed"])))
    if hw.get("cpu_model") or hw.get("cpu_count"):
        cpu = str(hw.get("cpu_model") or "CPU")
        if hw.get("cpu_count"):
            cpu += f" × {hw['cpu_count']} logical"
        items.append(KeyValue("CPU", cpu))
    mem = _num(hw.get("memory_bytes"))
    if mem:
        items.append(KeyValue("Memory", f"{mem / 2**30:.1f} GiB"))
    for key, label in (("gpu", "GPU"), ("platform", "Platform"), ("python", "Python")):
        if hw.get(key):
            items.append(KeyValue(label, F.fmt_value(hw[key])))
    fw = _dict(versions.get("frameworks"))
    if fw:
        items.append(KeyValue("Frameworks", ", ".join(f"{k} {v}" for k, v in fw.items())))
    plugins = _dict(versions.get("plugins"))
    if plugins:
        items.append(KeyValue("Plugins", ", ".join(f"{k} {v}" for k, v in plugins.items())))
    if prov.get("created"):
        items.append(KeyValue("Provenance recorded", str(prov["created"])))
    return items


def created_text(results: Mapping[str, Any], fallback: str = "") -> str:
    raw = _dict(results.get("provenance")).get("created") or fallback
    try:
        t = _dt.datetime.fromisoformat(str(raw))
    except ValueError:
        return str(raw)
    if t.tzinfo is not None:
        t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------- pages
def build_run_page(results: Mapping[str, Any], *, index_href: str, grid_href: str) -> RunPage:
    metrics = _metrics(results)
    by_name = {str(m["name"]): m for m in metrics}
    headline = [metric_view(by_name[n]) for n in headline_names(metrics, defined_only=True)]
    sections: list[Section] = []
    sections += _verification_sections(results)
    for build in (suite_section, _identification_section, _training_section, _detection_section, _landmarks_section,
                  tracking_section, _liveness_section, _inpainting_section, _skipped_section):
        s = build(results)
        if s:
            sections.append(s)
    sections += [s for s in (model_card_section(results), manifest_section(results)) if s]
    sections += [s for s in (pipeline_section(results),) if s]  # workers, seconds per stage, img/s
    sections += diagnostic_sections(results)  # demographics, failure gallery, EVRC (harness/report/_diagnostics.py)
    sections += [s for s in (fddb_roc_section(results),) if s]  # FDDB discrete ROC (detection)
    sections += [s for s in (detection_gallery_section(results),) if s]  # missed / false faces drawn (detection)
    s = E.published_section(results, by_name)
    if s:
        sections.insert(0, s)
    s = _metrics_section(metrics)
    if s:
        sections.append(s)
    status = str(results.get("status", "finished"))
    notes = []
    if status == "failed":
        notes.append("This run failed; the numbers below are what it had written before it stopped.")
    elif status == "running":
        notes.append("This run has not finished; the numbers below are partial.")
    combo = combination_text(results)
    name = str(results.get("name") or "")
    prov = _dict(results.get("provenance"))
    return RunPage(
        title=name or combo,
        run_id=str(results.get("run_id", "")),
        name=name,
        task=str(results.get("task", "")),
        status=status,
        created=created_text(results),
        combination=combo,
        synthetic=is_synthetic(results),
        notes=notes,
        protocol=protocol_box(results),
        headline=headline,
        sections=sections,
        components=component_cards(results),
        environment=environment(results),
        config_json=json.dumps(prov.get("config", {}), indent=2, sort_keys=True, ensure_ascii=False),
        index_href=index_href,
        grid_href=grid_href,
        generated=now_text(),
    )


def build_grid_page(
    grid_id: str, runs: list[tuple[str, dict[str, Any]]], *, run_href, index_href: str
) -> GridPage:
    """``runs``: (run_id, results) of the grid; ``run_href(run_id)`` links a run page."""
    combos = [combination(r) for _, r in runs]
    kinds = [k for k in KIND_ORDER if any(k in c for c in combos)]
    kinds += [k for c in combos for k in c if k not in kinds]
    varying = [k for k in kinds if len({c.get(k) for c in combos}) > 1] or kinds
    seen: list[str] = []
    for _, r in runs:
        for n in headline_names(_metrics(r), limit=8, defined_only=True):
            if n not in seen:
                seen.append(n)
    order = {n: i for i, n in enumerate(HEADLINE_ORDER)}
    columns_metrics = sorted(seen, key=lambda n: (order.get(n, len(order)), seen.index(n)))[:8]

    # direction and convention of each column, from the first run that has it
    info: dict[str, dict[str, Any]] = {}
    for _, r in runs:
        for m in _metrics(r):
            info.setdefault(str(m["name"]), m)
    columns = [Column("Run"), *[Column(k.capitalize()) for k in varying]]
    for n in columns_metrics:
        d = str(info[n].get("direction", "higher"))
        columns.append(Column(F.metric_label(n), numeric=True, best=d, title=str(info[n].get("convention") or n)))
    columns.append(Column("Status"))

    rows = []
    values: dict[str, list[float | None]] = {n: [] for n in columns_metrics}
    bounds: dict[str, list[tuple[float, float] | None]] = {n: [] for n in columns_metrics}
    for (run_id, r), combo in zip(runs, combos):
        by_name = {str(m["name"]): m for m in _metrics(r)}
        short = str(_dict(r.get("provenance")).get("config_hash") or r.get("config_hash") or run_id)
        row = [Cell(str(r.get("name") or short), href=run_href(run_id), title=run_id)]
        row += [Cell(combo.get(k, "—")) for k in varying]
        for n in columns_metrics:
            m = by_name.get(n)
            if m is None:
                row.append(Cell("—"))
                values[n].append(None)
                bounds[n].append(None)
            else:
                v = metric_view(m)
                note = " ".join(t for t in (v.spread, v.ci) if t)
                row.append(Cell(v.text, v.value, note=note, title=v.ci_note))
                values[n].append(v.value)
                bounds[n].append(E.ci_bounds(m) if v.value is not None else None)
        row.append(Cell(str(r.get("status", "?"))))
        rows.append(row)
    # mark the best value of each metric column (ties all marked; None never wins), and the runs whose
    # 95 % interval overlaps the best one's (not distinguishable from it)
    flagged = 0
    for j, n in enumerate(columns_metrics):
        col = 1 + len(varying) + j
        vals = [v for v in values[n] if v is not None]
        if len(vals) < 2:
            continue
        best = max(vals) if str(info[n].get("direction", "higher")) == "higher" else min(vals)
        for i, v in enumerate(values[n]):
            if v is not None and v == best:
                rows[i][col].best = True
        flagged += E.flag_overlaps([row[col] for row in rows], bounds[n], values[n],
                                   str(info[n].get("direction", "higher")))
    add_cost_columns(columns, rows, runs)  # params, GFLOPs, ms/face, img/s, manifest (sections.model_card)

    first = runs[0][1] if runs else {}
    protocols = [_dict(r.get("protocol")) for _, r in runs]
    shared = {k: v for k, v in _dict(first.get("protocol")).items() if all(p.get(k) == v for p in protocols)}
    # the interval statement the runs share (a seed that differs between runs is left out)
    statements = [_dict(_dict(r.get("sections")).get("intervals")) for _, r in runs]
    common = {k: v for k, v in (statements[0] if statements else {}).items()
              if k not in ("wall_s", "seed") and all(st.get(k) == v for st in statements)}
    if common and all(st.get("seed") == statements[0].get("seed") for st in statements):
        common["seed"] = statements[0].get("seed")
    same = {"intervals": common} if {"B", "unit"} <= set(common) else {}
    protocol = protocol_box({"protocol": shared, "sections": same}) if shared else []

    plots = []
    series = []
    for (run_id, r), combo in zip(runs, combos):
        roc = _curve(_dict(r.get("curves")).get("roc"), "far", "tar")
        if roc:
            series.append(Series(str(r.get("name") or " · ".join(combo.get(k, "") for k in varying)), *roc,
                                 band=E.roc_band(_dict(r.get("curves")))))
    if series:
        banded = any(s.band for s in series)
        plots.append(roc_plot(series, caption="Every run of the grid on one plot."
                              + (" Shaded: each run's pointwise 95 % bootstrap band." if banded else "")))
    loss = []
    for (run_id, r), combo in zip(runs, combos):
        tr = _dict(_dict(r.get("curves")).get("training"))
        ys = _list(tr.get("loss"))
        if ys:
            xs = _list(tr.get("step"))[: len(ys)] or list(range(len(ys)))
            loss.append(Series(str(r.get("name") or " · ".join(combo.get(k, "") for k in varying)), xs, ys[: len(xs)]))
    if loss:
        plots.append(line_chart(loss, kind="training-loss", title="Training loss", x_label="step", y_label="loss"))
    plots += _grid_pr_plots(runs, combos, varying)
    plots += identification_grid_plots(runs, combination_text)
    task = str(first.get("task", "")) if first else ""
    note = "Best value of each column marked ★; click a header to sort."
    if flagged:
        note += (" ≈: not distinguishable at 95 % from the column's best — the two runs' 95 % confidence "
                 "intervals overlap.")
    return GridPage(
        title=f"Grid {grid_id}" + (f" — {task}" if task else ""),
        grid_id=grid_id,
        protocol=protocol,
        synthetic=any(is_synthetic(r) for _, r in runs),
        table=Table(id="comparison", caption=f"{len(runs)} combinations", columns=columns, rows=rows,
                    sortable=True, note=note),
        plots=plots,
        index_href=index_href,
        generated=now_text(),
        sections=[s for s in (suite_grid_section(runs, run_href), manifest_grid_section(runs, run_href),
                              identification_grid_section(runs, run_href, combination_text)) if s],
    )


def _grid_pr_plots(runs: list[tuple[str, dict[str, Any]]], combos: list[dict[str, str]],
                   varying: list[str]) -> list[Markup]:
    """One precision–recall chart per detection subset (easy, medium, hard …), every run on each."""
    by_subset: dict[str, list[Series]] = {}
    for (run_id, r), combo in zip(runs, combos):
        label = str(r.get("name") or " · ".join(combo.get(k, "") for k in varying))
        for subset, c in _dict(_dict(r.get("curves")).get("pr")).items():
            xy = _curve(c, "recall", "precision")
            if xy:
                by_subset.setdefault(str(subset), []).append(Series(label, *xy))
    return [line_chart(series, kind=f"pr-{subset}" if len(by_subset) > 1 else "pr",
                       title=f"Precision–recall ({subset})" if len(by_subset) > 1 else "Precision–recall",
                       x_label="recall", y_label="precision", x_lim=(0.0, 1.0), y_lim=(0.0, 1.0))
            for subset, series in by_subset.items()]


def build_index_row(run_id: str, results: Mapping[str, Any] | None, *, href: str, grid: Link | None,
                    created: str, problem: str = "") -> IndexRow:
    if results is None:
        return IndexRow(run_id=run_id, href=href, title=run_id, status="error" if problem else "running",
                        created=created, components=[], component_names=[], headline=[], grid=grid,
                        problem=problem)
    combo = combination(results)
    metrics = _metrics(results)
    by_name = {str(m["name"]): m for m in metrics}
    return IndexRow(
        run_id=run_id,
        href=href,
        title=str(results.get("name") or combination_text(results)),
        status=str(results.get("status", "?")),
        created=created_text(results, created),
        components=[f"{k}: {v}" for k, v in combo.items()],
        component_names=sorted(set(combo.values())),
        headline=[metric_view(by_name[n]) for n in headline_names(metrics, limit=3, defined_only=True)],
        grid=grid,
        problem=problem,
    )


def group_key(results: Mapping[str, Any] | None) -> tuple[str, str]:
    if results is None:
        return ("unreadable", "results missing or unreadable")
    protocol = _dict(results.get("protocol"))
    label = dataset_text(protocol)
    if protocol.get("synthetic"):
        label += " (synthetic)"
    return (str(results.get("task", "?")), label)


def build_index_page(rows: list[tuple[tuple[str, str], IndexRow]], grids: list[Link]) -> IndexPage:
    """``rows``: (group key, row) pairs, newest first."""
    groups: dict[tuple[str, str], IndexGroup] = {}
    for key, row in rows:
        if key not in groups:
            gid = "group-" + re.sub(r"[^a-z0-9]+", "-", f"{key[0]}-{key[1]}".lower()).strip("-")
            groups[key] = IndexGroup(id=gid, task=key[0], protocol=key[1], rows=[])
        groups[key].rows.append(row)
    components = sorted({n for _, r in rows for n in r.component_names})
    return IndexPage(
        title="facebench reports",
        groups=list(groups.values()),
        components=components,
        grids=grids,
        run_count=len(rows),
        generated=now_text(),
    )
