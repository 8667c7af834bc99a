"""The grid page compares the models of a 1:N grid: rank-1/5 and FNIR @ FPIR per run, best marked,
n/a where a target is not measurable, every run's CMC and open-set DET on shared axes."""

from __future__ import annotations

from harness.report._build import build_grid_page
from harness.report._identification_grid import identification_grid_section
from harness.report._render import _render, environment


def _results(name: str, rank1: float, fnir: float | None, defined_1e3: bool = False) -> dict:
    return {
        "task": "recognition", "name": name, "status": "finished",
        "protocol": {"dataset": "att"},
        "metrics": [{"name": "rank1", "value": rank1, "direction": "higher"}],
        "sections": {
            "identification": {"trials": 3, "gallery_identities": 8, "probes": 72,
                               "rank": [{"k": 1, "mean": rank1, "std": 0.01}, {"k": 5, "mean": 1.0, "std": 0.0}]},
            "open_set": {"gallery_identities": 6, "probes": 80, "table": [
                {"fpir_target": 0.001, "fnir": 0.5 if defined_1e3 else None, "defined": defined_1e3},
                {"fpir_target": 0.01, "fnir": fnir, "fnir_std": 0.02, "defined": fnir is not None},
                {"fpir_target": 0.1, "fnir": (fnir or 0) / 2, "defined": True}]},
        },
        "curves": {"cmc": {"rank": [1, 2, 3], "rate": [rank1, 0.95, 1.0]},
                   "open_set_det": {"fpir": [0.0, 0.05, 1.0], "fnir": [1.0, 0.2, 0.0]}},
    }


def test_grid_compares_the_models_and_marks_the_best():
    runs = [("run-a", _results("dlib_resnet", 0.82, 0.30)), ("run-b", _results("sface", 0.91, 0.20)),
            ("run-c", {"task": "recognition", "name": "verification only", "metrics": [], "sections": {}})]
    sec = identification_grid_section(runs, lambda rid: f"../runs/{rid}/index.html", lambda r: "?")
    (table,) = sec.tables
    assert [row[0].text for row in table.rows] == ["dlib_resnet", "sface"]  # the run without 1:N is left out
    labels = [c.label for c in table.columns]
    rank1, fnir_1e3, fnir_1e2 = labels.index("Rank-1"), labels.index("FNIR @ FPIR 1e-3"), labels.index("FNIR @ FPIR 1e-2")
    assert [row[rank1].best for row in table.rows] == [False, True]  # higher rank-1 wins
    assert [row[fnir_1e2].best for row in table.rows] == [False, True]  # lower FNIR wins
    assert [row[fnir_1e3].text for row in table.rows] == ["n/a", "n/a"]  # below 1 / non-mated searches
    assert table.rows[0][rank1].text == "82.00%" and table.rows[0][0].href == "../runs/run-a/index.html"


def test_grid_page_renders_the_table_and_both_overlays():
    runs = [("run-a", _results("dlib_resnet", 0.82, 0.30)), ("run-b", _results("sface", 0.91, None, True))]
    page = build_grid_page("g1", runs, run_href=lambda rid: f"../runs/{rid}/index.html", index_href="../index.html")
    html = _render(environment(), "grid.html", page)
    assert 'id="identification-grid"' in html
    assert 'data-plot="grid-cmc"' in html and 'data-plot="grid-open-set-det"' in html
    assert html.count("dlib_resnet") >= 2 and "sface" in html


def test_no_section_without_a_search():
    runs = [("run-a", {"task": "recognition", "metrics": [], "sections": {"lfw": {}}})]
    assert identification_grid_section(runs, str, lambda r: "") is None
