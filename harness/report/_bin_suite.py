"""The ``.bin`` verification suite on the run and grid pages (``sections.bin_suite``).

Reads only ``results.json`` (written by :mod:`harness.tasks.bin_suite`):

* run page, :func:`suite_section`: the model x set table as insightface's
  model zoo prints it (Accuracy-Flip, %), one row per set with both
  conventions side by side, and the lines ``verification.py`` prints;
* grid page, :func:`suite_grid_section`: one row per run, a column per set
  under insightface's convention and one under facebench's, best marked.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from harness._values import finite_float
from harness.report import _format as F
from harness.report.context import Cell, Column, KeyValue, Section, Table

__all__ = ["suite_grid_section", "suite_section"]

_NA = "n/a"


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _sets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    suite = _dict(_dict(results.get("sections")).get("bin_suite"))
    sets = suite.get("sets")
    return [_dict(s) for s in sets] if isinstance(sets, list) else []


def _model_label(results: Mapping[str, Any], model: str) -> str:
    """The model with the options it was run with, e.g. ``mobilefacenet (weights=casia)``."""
    config = _dict(_dict(results.get("provenance")).get("config"))
    opts = _dict(_dict(config.get("options")).get(model))
    shown = ", ".join(f"{k}={v}" for k, v in sorted(opts.items()) if v not in (None, "", [], {}))
    return f"{model} ({shown})" if shown else (model or "—")


def _pct_cell(value: Any, std: Any = None) -> Cell:
    """A rate in percent with its ± std over folds, when given (sorts by value)."""
    f = finite_float(value)
    if f is None:
        return Cell(_NA)
    sd = finite_float(std)
    return Cell(F.fmt_percent(f), f, note=f"± {sd * 100:.2f}" if sd is not None else "")


def _mark_best(rows: list[list[Cell]], col: int, direction: str = "higher") -> None:
    vals = [r[col].value for r in rows if r[col].value is not None]
    if len(vals) < 2:
        return
    best = max(vals) if direction == "higher" else min(vals)
    for r in rows:
        if r[col].value is not None and r[col].value == best:
            r[col].best = True


def _model_table(model: str, sets: Sequence[dict[str, Any]]) -> Table:
    """One row, a column per set: the table insightface's model zoo prints."""
    columns = [Column("Model")] + [Column(str(s.get("label") or s.get("name")), numeric=True, best="higher",
                                          title=f"{s.get('name')}.bin, {s.get('pairs')} pairs")
                                   for s in sets]
    row = [Cell(model)]
    for s in sets:
        rec = _dict(s.get("insightface"))
        row.append(_pct_cell(rec.get("accuracy_flip"), rec.get("accuracy_flip_std"))
                   if rec.get("defined") else Cell(_NA, title=str(rec.get("reason", ""))))
    return Table(id="bin-suite-model", caption="As insightface reports it: Accuracy-Flip (%), ± std over 10 folds",
                 columns=columns, rows=[row])


def _sets_table(sets: Sequence[dict[str, Any]]) -> Table:
    columns = [Column("Set"), Column("Pairs", numeric=True), Column("XNorm", numeric=True),
               Column("Accuracy (insightface)", numeric=True,
                      title="no mirror: the script's acc1 (commented out in insightface, printed there as 0)"),
               Column("Accuracy-Flip (insightface)", numeric=True, title="image + mirror embeddings summed"),
               Column("VAL@FAR=1e-3 (insightface)", numeric=True),
               Column("Accuracy (facebench)", numeric=True, title="the run's stated protocol"),
               Column("TAR@FAR=1e-3 (facebench)", numeric=True, title="strict: largest TAR with FAR <= 1e-3"),
               Column("EER (facebench)", numeric=True)]
    rows = []
    for s in sets:
        rec, fb = _dict(s.get("insightface")), _dict(s.get("facebench"))
        row = [Cell(str(s.get("label") or s.get("name")), title=str(s.get("path", ""))),
               Cell(F.fmt_count(s.get("pairs")), finite_float(s.get("pairs")))]
        if rec.get("defined"):
            row += [Cell(F.fmt_number(rec.get("xnorm")), finite_float(rec.get("xnorm"))),
                    _pct_cell(rec.get("accuracy"), rec.get("accuracy_std")),
                    _pct_cell(rec.get("accuracy_flip"), rec.get("accuracy_flip_std")),
                    _pct_cell(rec.get("val"), rec.get("val_std")) if rec.get("val") is not None
                    else Cell(_NA, title=str(rec.get("val_note", "")))]
        else:
            row += [Cell(_NA, title=str(rec.get("reason", ""))) for _ in range(4)]
        row += [_pct_cell(fb.get("accuracy"), fb.get("accuracy_std")), _pct_cell(fb.get("tar_at_far_1e-3")),
                _pct_cell(fb.get("eer"))]
        rows.append(row)
    return Table(id="bin-suite-sets", caption="Every set under both conventions", columns=columns, rows=rows,
                 note="insightface: squared Euclidean of the normalised (image + mirror) embedding, threshold on "
                      "9 folds over a 0.01 grid. facebench: the run's protocol (see the Protocol box).")


def suite_section(results: Mapping[str, Any]) -> Section | None:
    """The run page's "Verification suite" section, or ``None`` without ``sections.bin_suite``."""
    suite = _dict(_dict(results.get("sections")).get("bin_suite"))
    sets = _sets(results)
    if not sets:
        return None
    conv = _dict(suite.get("conventions"))
    notes = [f"insightface convention — {conv['insightface']}" if conv.get("insightface") else "",
             f"facebench convention — {conv['facebench']}" if conv.get("facebench") else "",
             f"Embeddings: {suite['embedding']}." if suite.get("embedding") else ""]
    items = [KeyValue("Suite", ", ".join(str(s) for s in suite.get("source") or []), mono=True)]
    items += [KeyValue("verification.py prints", str(line), mono=True) for line in suite.get("printed") or []]
    return Section("bin-suite", "Verification suite (.bin)", notes=[n for n in notes if n], items=items,
                   tables=[_model_table(_model_label(results, str(suite.get("model") or "")), sets),
                           _sets_table(sets)])


def suite_grid_section(runs: Sequence[tuple[str, Mapping[str, Any]]],
                       run_href: Callable[[str], str]) -> Section | None:
    """The grid page's model x set table across the runs that evaluated a suite, or ``None``."""
    with_suite = [(rid, r) for rid, r in runs if _sets(r)]
    if not with_suite:
        return None
    names: list[str] = []
    labels: dict[str, str] = {}
    for _, r in with_suite:
        for s in _sets(r):
            n = str(s.get("name"))
            if n not in names:
                names.append(n)
                labels[n] = str(s.get("label") or n)
    columns = [Column("Run"), Column("Model")]
    columns += [Column(labels[n], numeric=True, best="higher", title=f"{n}: insightface Accuracy-Flip")
                for n in names]
    columns += [Column(f"{labels[n]} (facebench)", numeric=True, best="higher", title=f"{n}: facebench accuracy")
                for n in names]
    rows = []
    for rid, r in with_suite:
        by_name = {str(s.get("name")): s for s in _sets(r)}
        suite = _dict(_dict(r.get("sections")).get("bin_suite"))
        short = str(_dict(r.get("provenance")).get("config_hash") or r.get("config_hash") or rid)
        row = [Cell(str(r.get("name") or short), href=run_href(rid), title=rid),
               Cell(_model_label(r, str(suite.get("model") or "")))]
        for n in names:
            rec = _dict(_dict(by_name.get(n)).get("insightface"))
            row.append(_pct_cell(rec.get("accuracy_flip"), rec.get("accuracy_flip_std"))
                       if rec.get("defined") else Cell(_NA))
        for n in names:
            fb = _dict(_dict(by_name.get(n)).get("facebench"))
            row.append(_pct_cell(fb.get("accuracy"), fb.get("accuracy_std")))
        rows.append(row)
    for col in range(2, len(columns)):
        _mark_best(rows, col)
    table = Table(id="bin-suite-grid", caption=f"{len(rows)} model(s) x {len(names)} set(s)", columns=columns,
                  rows=rows, sortable=True,
                  note="Set columns: insightface's Accuracy-Flip; '(facebench)': the run's stated protocol. "
                       "Best of each column marked ★.")
    return Section("bin-suite", "Verification suite (.bin) across models", tables=[table])
