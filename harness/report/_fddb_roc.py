"""Run-page section of an FDDB detection run (``curves.fddb_roc`` and the
``fddb_tpr_at_fp_<N>`` metrics): the discrete ROC -- true-positive rate against the number of
false positives -- and a table of the rate at each false-positive budget with its interval.
Built from results.json alone (the rule is stated in the protocol, ``roc_rule``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from harness._values import finite_float
from harness.report import _evidence as E
from harness.report import _format as F
from harness.report._svg import Series, line_chart
from harness.report.context import Cell, Column, Section, Table

__all__ = ["fddb_roc_section"]

_POINT = re.compile(r"fddb_tpr_at_fp_(\d+)")


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _points_table(results: Mapping[str, Any]) -> Table | None:
    rows = []
    for m in results.get("metrics") or []:
        hit = _POINT.fullmatch(str(_dict(m).get("name", "")))
        if not hit:
            continue
        value = finite_float(m.get("value"))
        b = E.ci_bounds(m)
        rows.append((int(hit.group(1)), [
            Cell(f"≤ {int(hit.group(1)):,}", float(hit.group(1))), Cell(F.fmt_percent(value), value),
            Cell(f"[{F.fmt_percent(b[0])}, {F.fmt_percent(b[1])}]" if b else "—",
                 title=E.ci_note(_dict(_dict(m.get("meta")).get("ci"))))]))
    if not rows:
        return None
    return Table(id="fddb-points", caption="True-positive rate at a false-positive budget",
                 columns=[Column("False positives"), Column("TPR", numeric=True), Column("95% CI", numeric=True)],
                 rows=[r for _, r in sorted(rows, key=lambda r: r[0])])


def fddb_roc_section(results: Mapping[str, Any]) -> Section | None:
    """The section, or None when the run has no FDDB curve or metric."""
    curve = _dict(_dict(results.get("curves")).get("fddb_roc"))
    table = _points_table(results)
    fp, tpr = list(curve.get("false_positives") or []), list(curve.get("tpr") or [])
    n = min(len(fp), len(tpr))
    if not n and table is None:
        return None
    plots = []
    if n:
        plots.append(line_chart([Series("", fp[:n], tpr[:n])], kind="fddb-roc", title="Discrete ROC",
                                x_label="false positives", y_label="true-positive rate", y_lim=(0.0, 1.0),
                                caption="One point per detection-score threshold, over every image of the set."))
    faces = _dict(results.get("protocol")).get("faces_counted")
    notes = [f"{F.fmt_count(faces)} faces; a detection is a true positive when matched one to one to a face "
             "with overlap above 0.5 (the protocol states the rule)."] if isinstance(faces, int) else []
    return Section(id="fddb-roc", title="FDDB discrete ROC", notes=notes, tables=[table] if table else [],
                   plots=plots)
