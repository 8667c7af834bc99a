"""Report pieces for the model card (compute beside accuracy) and the reproducibility manifest.

Read from ``sections.model_card`` and ``sections.manifest`` of a recognition
run's ``results.json`` (written by ``harness.tasks._cost`` and
``harness.tasks._manifest``); every key optional, results without them show
nothing new.

* run page: :func:`model_card_section` (accuracy and cost in one table, then
  how the cost was measured) and :func:`manifest_section`;
* grid page: :func:`add_cost_columns` puts params, GFLOPs per face, ms/face
  and img/s beside the accuracy columns, and :func:`manifest_grid_section`
  names runs of one combination whose manifests differ (never the same result).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from harness._values import finite_float
from harness.report import _format as F
from harness.report.context import Cell, Column, KeyValue, Section, Table

__all__ = ["add_cost_columns", "manifest_grid_section", "manifest_mismatches", "manifest_section",
           "model_card_section"]

#: manifest fields shown on the run page, in order, with their labels
_MANIFEST_FIELDS = (
    ("alignment", "Alignment template"), ("input_size", "Crop size"), ("color", "Colour order"),
    ("normalisation", "Normalisation"), ("flip", "Flip fusion"), ("batch_size", "Batch size"),
    ("batching", "Batching"), ("engine", "Engine"), ("precision", "Precision"), ("device", "Device"),
    ("model_sha256", "Model sha256"), ("model_sha256_of", "sha256 of"),
)
#: accuracy metrics set beside the cost, when the run has them
_ACCURACY = ("accuracy", "tar_at_far_1e-3")


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _card(results: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(_dict(results.get("sections")).get("model_card"))


def _manifest(results: Mapping[str, Any]) -> dict[str, Any]:
    return _dict(_dict(results.get("sections")).get("manifest"))


def _params_text(v: Any) -> str:
    f = finite_float(v)
    return F.NA if f is None else f"{f / 1e6:.2f} M"


def _cost_cells(card: Mapping[str, Any]) -> list[Cell]:
    """Params, GFLOPs per face, ms/face at batch 1, img/s at the throughput batch."""
    na = str(card.get("compute_na") or "")
    skipped = str(card.get("timing_skipped") or "")
    batch = card.get("throughput_batch")
    gf = finite_float(card.get("gflops_per_face"))
    ms = finite_float(card.get("ms_per_face_batch1"))
    ips = finite_float(card.get("img_per_s"))
    passes = card.get("forward_passes_per_face")
    return [
        Cell(_params_text(card.get("params")), finite_float(card.get("params")), title=na),
        Cell(F.NA if gf is None else f"{gf:.3f}", gf, title=na,
             note=f"{passes} passes" if isinstance(passes, int) and passes > 1 else ""),
        Cell(F.NA if ms is None else f"{ms:.2f}", ms, title=skipped),
        Cell(F.NA if ips is None else f"{ips:.1f}", ips, title=skipped,
             note=f"batch {batch}" if batch not in (None, 64) else ""),
    ]


def _cost_columns() -> list[Column]:
    return [
        Column("Params", numeric=True, title="parameters of the model"),
        Column("GFLOPs / face", numeric=True, best="lower",
               title="one face as evaluated (2 FLOP per multiply-accumulate; flip fusion counts both passes)"),
        Column("ms / face (b1)", numeric=True, best="lower",
               title="warm latency, one face per call, on the run's device"),
        Column("img/s (b64)", numeric=True, best="higher", title="warm throughput at batch 64, same device"),
    ]


def _accuracy_cells(results: Mapping[str, Any]) -> tuple[list[Column], list[Cell]]:
    by_name = {str(m.get("name")): m for m in results.get("metrics") or [] if isinstance(m, Mapping)}
    cols, cells = [], []
    for name in _ACCURACY:
        if name in by_name:
            m = by_name[name]
            cols.append(Column(F.metric_label(name), numeric=True))
            cells.append(Cell(F.fmt_metric(name, m.get("value"), _dict(m.get("meta"))), finite_float(m.get("value"))))
    return cols, cells


def _timing_items(card: Mapping[str, Any]) -> list[KeyValue]:
    items = []
    if card.get("device"):
        items.append(KeyValue("Device", str(card["device"])))
    if card.get("embedding_size") is not None:
        items.append(KeyValue("Embedding size", F.fmt_value(card["embedding_size"])))
    if card.get("compute_method"):
        items.append(KeyValue("Counted by", str(card["compute_method"])))
    if card.get("ms_per_face_batch1") is not None:
        reps = f"median of {card.get('repeats_batch1', '?')} / {card.get('repeats_batch', '?')} timed calls"
        items.append(KeyValue("Timing", f"{card.get('warm', 'warm')}; {reps}; {card.get('wall_s', '?')} s "
                                        f"of a {card.get('budget_s', '?')} s budget"))
    if card.get("threads"):
        items.append(KeyValue("Threads", F.fmt_value(card["threads"]), mono=True))
    if card.get("load_average"):
        items.append(KeyValue("Load average (1, 5, 15 min)", F.fmt_value(card["load_average"])))
    return items


def model_card_section(results: Mapping[str, Any]) -> Section | None:
    """Accuracy and compute in one table, and how the compute was measured."""
    card = _card(results)
    if not card:
        return None
    acc_cols, acc_cells = _accuracy_cells(results)
    emb = Cell(F.fmt_value(card.get("embedding_size")), finite_float(card.get("embedding_size")))
    table = Table(
        id="model-card", caption="Accuracy beside cost",
        columns=[Column("Model"), *acc_cols, *_cost_columns(), Column("Embedding", numeric=True)],
        rows=[[Cell(str(card.get("model") or "?")), *acc_cells, *_cost_cells(card), emb]],
        note="GFLOPs: one face as evaluated; speed: warm, on the device and threads listed below.",
    )
    notes = [f"Params and GFLOPs n/a: {card['compute_na']}"] if card.get("compute_na") else []
    if card.get("note"):
        notes.append(str(card["note"]))
    if card.get("timing_skipped"):
        notes.append(f"Speed not measured: {card['timing_skipped']}")
    return Section(id="model-card", title="Model card: accuracy and compute", notes=notes,
                   items=_timing_items(card), tables=[table])


def manifest_section(results: Mapping[str, Any]) -> Section | None:
    """Every choice that shaped the embeddings, runtimes, the model's sha256 and the fingerprint."""
    m = _manifest(results)
    if not m:
        return None
    items = [KeyValue("Fingerprint", str(m.get("fingerprint", "?")), mono=True)]
    for key, label in _MANIFEST_FIELDS:
        if m.get(key) not in (None, ""):
            items.append(KeyValue(label, F.fmt_value(m[key]), mono=key in ("model_sha256", "normalisation")))
    lm = _dict(m.get("landmarker"))
    if lm:  # --landmarker placed the alignment points
        items.append(KeyValue("Landmarker", f"{lm.get('name')} ({lm.get('scheme')}): {lm.get('points')}"
                                            + (f"; {lm['five']}" if lm.get("five") else "")))
    runtimes = _dict(m.get("runtimes"))
    if runtimes:
        items.append(KeyValue("Runtimes", ", ".join(f"{k} {v or 'not installed'}" for k, v in runtimes.items())))
    compared = ", ".join(str(r) for r in m.get("compared_runtimes") or [])
    return Section(id="manifest", title="Reproducibility manifest", items=items, notes=[
        "Results with different fingerprints are different results: the fingerprint covers every field "
        f"below and the versions of {compared or 'the runtimes the model runs on'}."])


# -------------------------------------------------------------------- grid
def add_cost_columns(columns: list[Column], rows: list[list[Cell]], runs: Sequence[tuple[str, Mapping]]) -> None:
    """Insert the cost columns (and a manifest fingerprint column) before the grid table's last column.

    Nothing is added when no run of the grid has a model card.
    """
    if not any(_card(r) for _, r in runs):
        return
    at = max(len(columns) - 1, 0)
    columns[at:at] = [*_cost_columns(), Column("Manifest", title="reproducibility fingerprint (run page)")]
    mismatched = {run_id for pair in manifest_mismatches(runs) for run_id in pair[:2]}
    for row, (run_id, r) in zip(rows, runs):
        fp = str(_manifest(r).get("fingerprint") or "—")
        flag = Cell(fp, title="differs from a run of the same combination" if run_id in mismatched else "",
                    note="≠" if run_id in mismatched else "")
        row[at:at] = [*_cost_cells(_card(r)), flag]
    for j, col in enumerate(columns[at:at + 4]):
        if not col.best:
            continue
        values = [row[at + j].value for row in rows]
        known = [v for v in values if v is not None]
        if len(known) < 2:
            continue
        best = max(known) if col.best == "higher" else min(known)
        for row, v in zip(rows, values):
            row[at + j].best = v == best


def _combination(results: Mapping[str, Any]) -> tuple:
    config = _dict(_dict(results.get("provenance")).get("config"))
    return (str(results.get("task", "")), tuple(sorted(_dict(config.get("components")).items())),
            tuple(str(e) for e in config.get("eval") or ()))


def manifest_mismatches(runs: Sequence[tuple[str, Mapping]]) -> list[tuple[str, str, list[str]]]:
    """(run a, run b, fields that differ) for runs of one combination and data with different fingerprints."""
    out = []
    seen: dict[tuple, tuple[str, dict]] = {}
    for run_id, r in runs:
        m = _manifest(r)
        if not m.get("fingerprint"):
            continue
        key = _combination(r)
        if key not in seen:
            seen[key] = (run_id, m)
            continue
        first_id, first = seen[key]
        if first.get("fingerprint") != m.get("fingerprint"):
            fields = [k for k, _ in _MANIFEST_FIELDS if first.get(k) != m.get(k)]
            ra, rb = _dict(first.get("runtimes")), _dict(m.get("runtimes"))
            fields += [f"{k} {ra.get(k)} vs {rb.get(k)}" for k in m.get("compared_runtimes") or ()
                       if ra.get(k) != rb.get(k)]
            out.append((first_id, run_id, fields))
    return out


def manifest_grid_section(runs: Sequence[tuple[str, Mapping]], run_href: Callable[[str], str]) -> Section | None:
    """A warning naming runs of one combination whose manifests differ, and how; None when none do."""
    found = manifest_mismatches(runs)
    if not found:
        return None
    rows = [[Cell(a, href=run_href(a)), Cell(b, href=run_href(b)), Cell(", ".join(f) or "fingerprint")]
            for a, b, f in found]
    return Section(
        id="manifest-mismatch", title="Not the same result",
        notes=["These runs have the same components and data but different reproducibility manifests "
               "(marked ≠ in the table): compare them as different results."],
        tables=[Table(id="manifest-mismatches", caption="Runs whose manifests differ",
                      columns=[Column("Run"), Column("Run"), Column("Differs in")], rows=rows)],
    )
