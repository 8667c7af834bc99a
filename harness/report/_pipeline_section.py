"""Run page: how the evaluation pipeline ran (``sections.pipeline`` of ``results.json``).

Written by :func:`harness.tasks._pipeline.stage_section`: worker processes,
where the embedding ran, seconds per stage (decode, detect, align, embed,
score; summed over the processes that ran them), wall time and images per
second.  Results without the section show nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

from harness._values import finite_float
from harness.report import _format as F
from harness.report.context import Cell, Column, KeyValue, Section, Table

__all__ = ["pipeline_section"]

_STAGES = ("decode", "detect", "align", "embed", "score", "setup")
_LABELS = {"setup": "setup (building models in workers)"}


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _seconds(v: Any) -> str:
    f = finite_float(v)
    return F.NA if f is None else f"{f:.2f} s"


def pipeline_section(results: Mapping[str, Any]) -> Section | None:
    """The "Evaluation pipeline" card: facts, then a table of seconds per stage."""
    p = _dict(_dict(results.get("sections")).get("pipeline"))
    if not p:
        return None
    workers = p.get("workers")
    how = "in the run's own process" if not workers else f"{workers} worker processes (one thread each)"
    items = [KeyValue("Decode → detect → align", how)]
    if p.get("ranks"):
        items.append(KeyValue("Ranks", f"{p['ranks']} (torchrun: images dealt out to the ranks, gathered in order; "
                                       "the workers above are per rank)"))
    if p.get("embed_on"):
        where = "in the workers (each embeds its own crops)" if p["embed_on"] == "workers" else \
            "on the main process, in batches, while the workers run ahead"
        items.append(KeyValue("Embedding", where))
    rate = finite_float(p.get("img_per_s"))
    items += [KeyValue("Images", F.fmt_value(p.get("images"))),
              KeyValue("Wall time", _seconds(p.get("wall_s"))),
              KeyValue("Throughput", F.NA if rate is None else f"{rate:.2f} img/s")]
    if p.get("detected") is not None:
        items.append(KeyValue("Detections", f"{p.get('detected', 0)} new, {p.get('from_store', 0)} from the cache"))
    if p.get("why_in_process"):
        items.append(KeyValue("Why in-process", str(p["why_in_process"])))
    seconds = _dict(p.get("seconds"))
    wall = finite_float(p.get("wall_s"))
    rows = []
    for stage in _STAGES:
        v = finite_float(seconds.get(stage))
        if v is None or (stage == "setup" and v == 0):
            continue
        share = F.NA if not wall else f"{100 * v / wall:.0f} %"
        rows.append([Cell(_LABELS.get(stage, stage)), Cell(_seconds(v), v), Cell(share, v / wall if wall else None)])
    tables = [Table(id="pipeline-stages", caption="Seconds per stage",
                    columns=[Column("Stage"), Column("Seconds", numeric=True), Column("Of wall time", numeric=True)],
                    rows=rows, note=str(p.get("rule") or ""))] if rows else []
    return Section("pipeline", "Evaluation pipeline", items=items, tables=tables)
