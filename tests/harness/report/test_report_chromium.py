"""The rendered pages in a real headless Chromium: they load without errors or
network requests, tables hold the stored values, plots are there, sorting and
filtering work.  A screenshot of each page type goes to tests/artifacts/."""

from __future__ import annotations

import pytest

from harness.report import _format as F
from harness.report import render_run

pytestmark = pytest.mark.chromium


def _only_local(watch) -> None:
    remote = [u for u in watch.requests if not u.startswith(("file:", "data:"))]
    assert remote == [], f"the page made network requests: {remote}"
    assert watch.errors == [], watch.errors


def _texts(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def test_run_page(rendered, watch):
    run = rendered["runs"]["verification"]
    results = run.read_results()
    page = watch.open(run.page_path)
    _only_local(watch)
    assert page.title().startswith("resnet20 + arcface on LFW")

    # LFW table: per-fold accuracy and threshold, then mean ± std
    folds = results["sections"]["lfw"]["folds"]
    rows = page.locator("#lfw-folds tbody tr")
    assert rows.count() == 10
    for i, f in enumerate(folds):
        cells = _texts(page, f"#lfw-folds tbody tr:nth-child({i + 1}) td")
        assert cells == [str(f["fold"]), F.fmt_percent(f["accuracy"]), F.fmt_threshold(f["threshold"])]
    foot = page.locator("#lfw-folds tfoot td").all_inner_texts()
    lfw = results["sections"]["lfw"]
    assert F.fmt_percent(lfw["mean"]) in foot[1] and f"± {lfw['std'] * 100:.2f}" in foot[1]

    # TAR@FAR from 1e-6 to 1e-1; n/a below 1/N_impostor
    tar = _texts(page, "#tar-at-far tbody td:nth-child(2)")
    far = _texts(page, "#tar-at-far tbody td:nth-child(1)")
    assert far == ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"]
    n_imp = results["sections"]["counts"]["impostor"]
    for label, text, row in zip(far, tar, results["sections"]["tar_at_far"]):
        if row["far"] < 1 / n_imp:
            assert text == "n/a", label
        else:
            assert text == F.fmt_percent(row["tar"]), label
    assert "strict" in page.locator("#verification").inner_text()

    # operating points at the EER and FAR = 1e-3 thresholds
    ops = _texts(page, "#operating-points tbody td:nth-child(1)")
    assert ops == ["EER (FAR = FRR)", "FAR = 1e-3"]
    frr = _texts(page, "#operating-points tbody td:nth-child(4)")
    assert frr == [F.fmt_percent(o["frr"]) for o in results["sections"]["operating_points"]]

    # headline cards
    eer = next(m for m in results["metrics"] if m["name"] == "eer")
    assert page.locator('.metric[data-metric="eer"] .value').inner_text().strip() == F.fmt_percent(eer["value"])

    # protocol box
    protocol = page.locator("#protocol").inner_text()
    for text in ("6,000 pairs", "3,000 genuine", "mtcnn", "arcface_112", "112×112", "cosine", "Flip test"):
        assert text in protocol

    # plots: inline SVG with drawn series
    for kind in ("roc", "det", "hist", "training-loss", "training-accuracy", "training-lr"):
        svg = page.locator(f'svg.plot[data-plot="{kind}"]')
        assert svg.count() == 1, kind
        assert svg.locator("path.series").first.get_attribute("d").count("L") > 3, kind
        box = svg.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100, kind

    # component cards and environment
    cards = page.locator(".component")
    assert cards.count() == 3
    backbone = page.locator('.component[data-kind="backbone"]').inner_text()
    assert "780.00 k" in backbone and "220.00 M" in backbone and "MIT" in backbone
    assert "facebench" in page.locator("#environment").inner_text()
    assert page.locator(".banner.synthetic").count() == 0
    watch.screenshot("report-run.png")


def test_synthetic_banner(rendered, watch):
    page = watch.open(rendered["runs"]["synthetic"].page_path)
    _only_local(watch)
    assert "Synthetic data" in page.locator(".banner.synthetic").inner_text()


def test_grid_page_sorts(rendered, watch):
    grid = rendered["reports"] / "grids" / "grid-demo.html"
    page = watch.open(grid)
    _only_local(watch)
    runs = rendered["runs"]["grid"]
    table = page.locator("#comparison")
    assert table.locator("tbody tr").count() == len(runs)
    headers = _texts(page, "#comparison thead th")
    acc_col = headers.index("LFW accuracy") + 1
    eer_col = headers.index("EER") + 1

    def column(col):
        return [float(v) for v in table.locator(f"tbody td:nth-child({col})").evaluate_all(
            "tds => tds.map(td => td.getAttribute('data-value'))")]

    stored = [next(m["value"] for m in r.read_results()["metrics"] if m["name"] == "lfw_accuracy") for r in runs]
    assert sorted(column(acc_col)) == sorted(stored)

    # best value marked (higher accuracy, lower EER)
    best_acc = table.locator(f"tbody td:nth-child({acc_col}).best")
    assert best_acc.count() == 1 and float(best_acc.get_attribute("data-value")) == max(stored)
    best_eer = table.locator(f"tbody td:nth-child({eer_col}).best")
    assert float(best_eer.get_attribute("data-value")) == min(column(eer_col))

    # first click sorts best first, the second click reverses
    table.locator(f"thead th:nth-child({acc_col})").click()
    assert column(acc_col) == sorted(stored, reverse=True)
    assert table.locator(f"thead th:nth-child({acc_col})").get_attribute("aria-sort") == "descending"
    table.locator(f"thead th:nth-child({acc_col})").click()
    assert column(acc_col) == sorted(stored)
    table.locator(f"thead th:nth-child({eer_col})").click()
    eers = column(eer_col)
    assert eers == sorted(eers)
    # text column
    table.locator("thead th:nth-child(2)").click()
    names = _texts(page, "#comparison tbody td:nth-child(2)")
    assert names == sorted(names)

    roc = page.locator('svg.plot[data-plot="roc"] path.series')
    assert roc.count() == len(runs)
    assert page.locator("figure.chart ul.legend li").count() >= len(runs)
    watch.screenshot("report-grid.png")


def test_index_page_filters(rendered, watch):
    page = watch.open(rendered["index"])
    _only_local(watch)
    all_runs = page.locator("tr.run")
    total = all_runs.count()
    assert total == 9
    tasks = page.locator("section.group").evaluate_all("s => s.map(x => x.dataset.task)")
    assert {"recognition", "detection", "liveness", "inpainting"} <= set(tasks)
    # every run links to its page, and the links resolve
    for href in page.locator("tr.run td:first-child a").evaluate_all("as => as.map(a => a.href)"):
        assert href.startswith("file://")
    assert page.locator('a[href="grids/grid-demo.html"]').count() >= 1

    page.select_option("#component-filter", "mobilefacenet")
    visible = page.locator("tr.run:visible")
    assert visible.count() == 2
    for comps in visible.evaluate_all("rs => rs.map(r => r.dataset.components)"):
        assert "mobilefacenet" in comps.split()
    assert page.locator("#run-count").inner_text() == f"2 of {total} runs shown"
    assert page.locator("section.group:visible").count() == 1

    page.select_option("#component-filter", "")
    page.fill("#run-search", "yunet")
    assert page.locator("tr.run:visible").count() == 1
    page.fill("#run-search", "")
    assert page.locator("tr.run:visible").count() == total
    watch.screenshot("report-index.png")


@pytest.mark.parametrize("kind", ["detection", "liveness", "inpainting"])
def test_task_sections(rendered, watch, kind):
    run = rendered["runs"][kind]
    page = watch.open(run.page_path)
    _only_local(watch)
    section = page.locator(f"section#{kind}")
    assert section.count() == 1
    text = section.inner_text()
    if kind == "detection":
        assert _texts(page, "#detection-ap tbody td:nth-child(2)") == ["91.20%", "87.40%", "61.10%"]
        assert page.locator('svg.plot[data-plot="pr"] path.series').count() == 3
        assert "41.7" in text
    elif kind == "liveness":
        assert _texts(page, "#apcer-species tbody td:nth-child(2)") == ["8.50%", "3.00%"]
        for t in ("BPCER", "ACER", "HTER", "6.25%", "dev split", "no substitute for a real"):
            assert t in text
    else:
        assert "31.42 dB" in text and "0.9312" in text
        assert _texts(page, "#inpainting-verification tbody td:nth-child(3)") == ["96.20%", "4.10%"]
        widths = page.locator(".strip img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
        assert widths == [288, 288], "sample images did not load"
    watch.screenshot(f"report-{kind}.png")


def test_script_in_user_strings_renders_as_text(tmp_path, make, watch):
    from harness.results import RunStore

    store = RunStore(tmp_path)
    evil = "<script>window.__pwned = 1</script>"
    comps = make.recognition_components("resnet20", "arcface")
    comps["backbone"]["summary"] = evil
    comps["backbone"]["paper"] = "javascript:window.__pwned = 3"
    body = make.verification_results(3, n_pairs=200)
    body["protocol"]["dataset"] = '/data/<img src=x onerror="window.__pwned = 2">'
    run = make.write_run(store, "recognition", body, comps, name=evil)
    render_run(run)
    page = watch.open(run.page_path)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("h1").inner_text() == evil
    assert evil in page.locator('.component[data-kind="backbone"]').inner_text()
    assert page.locator('.component a[href^="javascript"]').count() == 0
    assert 'onerror="window.__pwned = 2"' in page.locator("#protocol").inner_text()
    assert page.locator("#protocol img").count() == 0
