"""Run, grid and index pages of every task, from results the tasks' own code
paths wrote (``_task_results``), in headless Chromium: intervals on cards,
tables and grids, "not distinguishable" flags, ROC / DET bands, measured vs
published, one-fold protocols, readable labels.  Screenshots go to
tests/artifacts/evidence-*.png."""

from __future__ import annotations

import re

import pytest

from harness.report import _format as F
from harness.report._evidence import NOT_DISTINGUISHABLE

pytestmark = pytest.mark.chromium


@pytest.fixture(scope="module")
def task_reports(tmp_path_factory):
    import _task_results as T

    from harness.report import render_all

    reports = tmp_path_factory.mktemp("evidence")
    runs = T.build(reports)
    index = render_all(reports)
    return {"reports": reports, "runs": runs, "index": index}


def _clean(page, watch) -> str:
    remote = [u for u in watch.requests if not u.startswith(("file:", "data:"))]
    assert remote == [] and watch.errors == [], (remote, watch.errors)
    text = page.locator("main").inner_text()
    assert not re.search(r"\{\s*\"", text), "raw JSON on the page"
    for generated in ("Wall s", "Img per s", "Iou", "Images per s"):
        assert not re.search(rf"\b{generated}\b", text), generated
    return text


def _by_name(run) -> dict:
    return {m["name"]: m for m in run.read_results()["metrics"]}


def test_pretrained_run_page_shows_intervals_bands_and_published(task_reports, watch):
    run = task_reports["runs"]["pretrained"]
    metrics = _by_name(run)
    page = watch.open(run.page_path)
    text = _clean(page, watch)
    # headline: measurable TAR@FAR only, every card with a value and its interval
    cards = page.locator(".headline .metric")
    names = cards.evaluate_all("cs => cs.map(c => c.dataset.metric)")
    assert "tar_at_far_1e-3" in names and "tar_at_far_1e-4" not in names
    assert "n/a" not in page.locator(".headline").inner_text()
    acc = metrics["accuracy"]
    ci = page.locator('.metric[data-metric="accuracy"] .ci')
    assert ci.inner_text().strip() == f"95% CI [{F.fmt_percent(acc['ci'][0])}, {F.fmt_percent(acc['ci'][1])}]"
    assert "bootstrap over subjects" in ci.get_attribute("title") and "B = 120" in ci.get_attribute("title")
    # TAR@FAR table: a CI column, realised FAR, n/a rows without an interval
    headers = [h.strip() for h in page.locator("#tar-at-far thead th").all_inner_texts()]
    assert headers == ["FAR target", "TAR", "95% CI", "Realised FAR", "Threshold"]
    row = page.locator("#tar-at-far tbody tr:nth-child(4) td").all_inner_texts()
    lo, hi = metrics["tar_at_far_1e-3"]["ci"]
    assert row[0] == "1e-3" and row[2] == f"[{F.fmt_percent(lo)}, {F.fmt_percent(hi)}]"
    assert page.locator("#tar-at-far tbody tr:nth-child(1) td").all_inner_texts()[2] == "—"
    # operating points name their FAR target and show the FAR realised
    ops = [t.strip() for t in page.locator("#operating-points tbody td:nth-child(1)").all_inner_texts()]
    assert ops[0] == "EER (FAR = FRR)" and ops[-1] == "FAR target ≤ 1e-1"
    assert "Realised FAR" in page.locator("#operating-points thead").inner_text()
    # ROC zoomed on TAR with a band; DET with a band
    for kind in ("roc", "det"):
        svg = page.locator(f'svg.plot[data-plot="{kind}"]')
        assert svg.locator("path.band").count() == 1, kind
        assert svg.locator("path.band").get_attribute("d").endswith("Z")
    assert "zoomed" in page.locator("figure.chart", has=page.locator('svg[data-plot="roc"]')).inner_text()
    # measured vs published
    pub = page.locator("#published-vs-measured tbody tr").first.locator("td").all_inner_texts()
    assert pub[1].startswith("99.38%") and pub[2] == F.fmt_percent(acc["value"])
    assert pub[5] == ("yes" if acc["ci"][0] <= 0.9938 <= acc["ci"][1] else "no")
    facts = page.locator("section#published .table-note").inner_text()
    assert "Published with: threshold 0.6; jitters 100." in facts and "std" not in facts.lower()
    # the protocol states how the intervals were made
    protocol = page.locator("#protocol").inner_text()
    assert "Confidence intervals" in protocol and "bootstrap over subjects" in protocol
    assert "exact binomial" not in protocol  # a subject bootstrap covers FAR / FRR at the threshold too
    assert "99.38" in text
    watch.screenshot("evidence-run-recognition.png")


def test_one_fold_run_from_scratch_reads_as_what_it_did(task_reports, watch):
    run = task_reports["runs"]["scratch"]
    page = watch.open(run.page_path)
    text = _clean(page, watch)
    protocol = page.locator("#protocol").inner_text()
    assert "fold 0 only (0-based): 600 pairs" in protocol
    assert "the full dataset; this run used part of it" in protocol
    assert page.locator("#lfw-folds thead th").first.inner_text().strip() == "Sub-fold"
    assert "sub-folds" in page.locator("#lfw-folds caption").inner_text()
    backbone = page.locator('.component[data-kind="backbone"]').inner_text()
    assert "068.ckpt" not in backbone and "trained from scratch" in backbone
    training = page.locator("#training").inner_text()
    for label in ("Wall time (s)", "Images/s", "Batch size 32"):
        assert label in training, label
    evals = page.locator("#training-epoch-evals tbody tr")
    assert evals.count() == 5
    assert page.locator("#training-epoch-evals thead").inner_text().split() == [
        "Epoch", "Step", "Validation", "accuracy"]
    assert "Epoch evaluations" in text
    watch.screenshot("evidence-run-one-fold.png")


def test_identification_run_page_has_intervals(task_reports, watch):
    run = task_reports["runs"]["identification"]
    metrics = _by_name(run)
    page = watch.open(run.page_path)
    _clean(page, watch)
    lo, hi = metrics["rank1"]["ci"]
    assert page.locator('.metric[data-metric="rank1"] .ci').inner_text().strip() == \
        f"95% CI [{F.fmt_percent(lo)}, {F.fmt_percent(hi)}]"
    table = page.locator("#metrics")
    assert "95% CI" in table.locator("thead").inner_text()
    assert "n/a" not in page.locator(".headline").inner_text()  # FNIR@FPIR 1e-2 is not measurable here
    rank = page.locator("#rank-k tbody tr:nth-child(2) td").all_inner_texts()
    lo, hi = metrics["rank5"]["ci"]
    assert rank[0] == "rank-5" and rank[2] == f"[{F.fmt_percent(lo)}, {F.fmt_percent(hi)}]"
    assert page.locator('.metric[data-metric="rank5"] .label').inner_text() == "Rank-5"
    assert "subjects" in page.locator("#protocol").inner_text()
    watch.screenshot("evidence-run-identification.png")


def test_liveness_run_page_has_binomial_intervals(task_reports, watch):
    run = task_reports["runs"]["liveness"]
    page = watch.open(run.page_path)
    _clean(page, watch)
    card = page.locator('.metric[data-metric="apcer"] .ci')
    assert "exact binomial (Clopper–Pearson)" in card.get_attribute("title")
    assert "worst species" in card.get_attribute("title")
    assert "bootstrap over presentations" in page.locator('.metric[data-metric="acer"] .ci').get_attribute("title")
    watch.screenshot("evidence-run-liveness.png")


def test_detection_run_page(task_reports, watch):
    run = task_reports["runs"]["detection_grid"][0]
    page = watch.open(run.page_path)
    text = _clean(page, watch)
    assert "IoU" in text
    protocol = page.locator("#protocol").inner_text()
    assert "WIDER FACE val easy / medium / hard (40 images)" in protocol
    assert "Faces counted" in protocol and "Easy" in protocol
    assert page.locator("#detection-ap thead").inner_text().split() == ["Subset", "AP", "95%", "CI"]
    box = page.locator('svg.plot[data-plot="pr"]').bounding_box()
    assert box and box["width"] <= 660, "the PR chart spans the page"
    watch.screenshot("evidence-run-detection.png")


def test_recognition_grid_flags_overlapping_intervals(task_reports, watch):
    runs = task_reports["runs"]["recognition_grid"]
    grid = task_reports["reports"] / "grids" / "grid-ci.html"
    page = watch.open(grid)
    _clean(page, watch)
    headers = [h.strip() for h in page.locator("#comparison thead th").all_inner_texts()]
    col = headers.index("Accuracy") + 1
    cells = page.locator(f"#comparison tbody td:nth-child({col})")
    accs = [_by_name(r)["accuracy"] for r in runs]
    best = max(accs, key=lambda m: m["value"])
    overlapping = [m for m in accs if m is not best and m["ci"][0] <= best["ci"][1] and best["ci"][0] <= m["ci"][1]]
    titles = cells.evaluate_all("tds => tds.map(td => td.title)")
    flagged = [t for t in titles if NOT_DISTINGUISHABLE in t and not t.startswith("best")]
    assert len(flagged) == len(overlapping) >= 1
    for m in accs:  # each cell shows its interval
        assert any(f"[{F.fmt_percent(m['ci'][0])}, {F.fmt_percent(m['ci'][1])}]" in t
                   for t in cells.all_inner_texts())
    assert "not distinguishable at 95 %" in page.locator(".table-note").first.inner_text()
    assert page.locator('svg.plot[data-plot="roc"] path.band').count() == len(runs)
    assert "bootstrap over subjects" in page.locator("#protocol").inner_text()  # shared by every run
    watch.screenshot("evidence-grid-recognition.png")


def test_detection_grid_plots_every_subset(task_reports, watch):
    page = watch.open(task_reports["reports"] / "grids" / "grid-det.html")
    _clean(page, watch)
    for subset in ("easy", "medium", "hard"):
        assert page.locator(f'svg.plot[data-plot="pr-{subset}"] path.series').count() == 2, subset
    watch.screenshot("evidence-grid-detection.png")


def test_index_lists_every_task_with_intervals(task_reports, watch):
    page = watch.open(task_reports["index"])
    _clean(page, watch)
    tasks = set(page.locator("section.group").evaluate_all("s => s.map(x => x.dataset.task)"))
    assert {"recognition", "detection", "liveness"} <= tasks
    assert page.locator("tr.run").count() == 9
    assert "n/a" not in page.locator("tr.run").first.inner_text()
    watch.screenshot("evidence-index.png")
