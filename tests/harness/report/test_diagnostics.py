"""Run-page sections for demographics, the failure gallery and EVRCs
(harness/report/_diagnostics.py): built from results.json alone, rendered
through run.html, user text escaped, only JPEG data URIs used as image sources."""

from __future__ import annotations

import html.parser

import numpy as np
import pytest

from harness.metrics.demographics import group_report
from harness.metrics.quality import quality_report
from harness.report import _diagnostics as D
from harness.report._build import build_run_page
from harness.report._render import _render, environment
from harness.results import to_jsonable

URI = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2w=="


def _results():
    rng = np.random.default_rng(0)
    n = 1500
    y = rng.random(n) < 0.4
    grp = np.where(rng.random(n) < 0.5, "f", "<m>")
    s = np.where(y, rng.normal(2.0, 1.0, n) - 0.5 * (grp == "f"), rng.normal(0, 1, n) + 0.3 * (grp == "f"))
    attrs = [{"sex": g} for g in grp]
    dm = group_report(s, y, attrs, attrs, ["sex"], fmr_target=1e-2, B=50, source="groups.csv", key="identity")
    q = rng.random(n)
    qr = quality_report(s, y, {"sharpness": (q, q)}, descriptions={"sharpness": "focus"}, fmr_target=1e-2)
    img = {"file": "A/A_0001.jpg", "uri": URI, "fallback": False}
    bad = {"file": "<script>x</script>", "uri": "javascript:alert(1)", "fallback": True}
    gallery = {"threshold": 0.5, "rule": "EER threshold", "thumbnail": "72 px JPEG",
               "false_accepts": [{"score": 0.9, "fold": 0, "a": img, "b": bad}], "false_rejects": [],
               "fallbacks": [bad], "counts": {"false_accepts": 4, "false_rejects": 0, "fallback_images": 1},
               "bytes": 10, "truncated": True}
    return to_jsonable({"task": "recognition", "run_id": "r1", "status": "finished", "metrics": [],
                        "provenance": {}, "protocol": {},
                        "sections": {"demographics": dm, "quality": qr, "failure_gallery": gallery}})


class _Imgs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs).get("src"))


def test_sections_render_through_the_run_page():
    results = _results()
    page = build_run_page(results, index_href="", grid_href="")
    ids = [s.id for s in page.sections]
    assert {"demographics", "failure-gallery", "quality"} <= set(ids)
    html_text = _render(environment(), "run.html", page)
    p = _Imgs()
    p.feed(html_text)
    assert p.srcs == [URI]  # the javascript: source never becomes an <img>
    assert "<script>x</script>" not in html_text and "&lt;script&gt;" in html_text
    assert "&lt;m&gt;" in html_text and "<m>" not in html_text.replace("<meta", "")
    assert html_text.count('data-plot="group-fmr"') == 1 and html_text.count('data-plot="evrc"') == 1
    assert html_text.count('class="bar"') == 4  # two groups x (FMR, FNMR)
    assert "size cap" in html_text


def test_demographic_items_show_ratios_with_intervals_and_fdr():
    s = D.demographics_section(_results())
    keys = {kv.key: kv.value for kv in s.items}
    assert keys["sex: FMR max / min"].count("[") == 1
    assert any(k.startswith("sex: Fairness discrepancy rate") for k in keys)
    assert s.tables[0].columns[2].label == "FNMR" and len(s.tables[0].rows) == 2


def test_quality_table_and_sections_absent_without_data():
    q = D.quality_section(_results())
    assert q.tables[0].id == "evrc" and q.tables[0].rows[0][0].text == "sharpness"
    assert D.diagnostic_sections({"sections": {}}) == []


@pytest.mark.parametrize("bars", [[("a", None, None), ("b", 0.0, [0.0, 0.0])], []], ids=["na-and-zero", "empty"])
def test_bar_chart_edge_cases(bars):
    svg = str(D.bar_chart(bars, kind="k", title="t", y_label="FMR"))
    assert svg.startswith('<figure class="chart">') and svg.count('class="bar"') == sum(b[1] is not None for b in bars)


def test_liveness_gallery_renders_single_presentations():
    item = {"file": "test/a.png", "uri": URI, "fallback": False, "score": 0.9, "species": "<print>", "accepted": True}
    results = {"sections": {"failure_gallery": {"kind": "liveness", "threshold": 0.5, "rule": "r",
                                                "attacks": [item], "bona_fide": [],
                                                "counts": {"attacks_accepted": 1, "bona_fide_rejected": 0}}}}
    s = D.gallery_section(results)
    text = "".join(str(p) for p in s.plots)
    assert text.count("<img") == 1 and "&lt;print&gt;" in text and "accepted" in text and "none" in text
