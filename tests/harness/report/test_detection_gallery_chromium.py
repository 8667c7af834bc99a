"""The detection failure gallery of a real detection run, in headless Chromium.

The run is the detection run the interval tests use (``haar`` on the WIDER subset of
FACEBENCH_DATA, small B), written and rendered by ``harness run`` itself; the page is opened
from disk as a user would.  Checked: every gallery image decodes (``naturalWidth > 0``), the
legend names missed / false / found, no console error or failed request, nothing loaded from
outside the file, and the gallery within its byte cap.  Screenshot:
tests/artifacts/detection-gallery.png.
"""

from __future__ import annotations

import json

import pytest

from harness.tasks._gallery import MAX_GALLERY_BYTES
from tests.conftest import need_data

pytestmark = pytest.mark.chromium

B = 100
#: the run page around the gallery (styles, tables, charts, the other sections): far below this
PAGE_OVERHEAD_BYTES = 200_000


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory, browser):
    """``harness run --detector haar --eval wider=…``: its run page and results (after the
    browser fixture, so a machine without Chromium skips before running anything)."""
    pytest.importorskip("cv2")
    wider = need_data("wider")
    from harness.cli import main
    from harness.results import RunStore

    root = tmp_path_factory.mktemp("detection-gallery")
    cfg = root / "intervals.yaml"
    cfg.write_text(f"intervals:\n  bootstrap: {B}\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("FACEBENCH_PROGRESS", "0")
    try:
        code = main(["run", "--config", str(cfg), "--detector", "haar", "--eval", f"wider={wider}",
                     "--reports", str(root / "reports")])
    finally:
        mp.undo()
    assert code == 0
    (run,) = RunStore(root / "reports").runs()
    return run, json.loads(run.results_path.read_text())


def test_detection_gallery_renders_in_chromium(detection_run, watch):
    run, results = detection_run
    gallery = results["sections"]["detection_gallery"]
    assert gallery["images"], "the fixture run has missed or false faces to show"
    page = watch.open(run.page_path)
    section = page.locator("section#detection-gallery")
    assert section.count() == 1
    section.scroll_into_view_if_needed()
    imgs = section.locator("img")
    assert imgs.count() == len(gallery["images"]) > 0
    page.wait_for_function("""() => [...document.querySelectorAll('#detection-gallery img')]
                              .every(i => i.complete)""")
    widths = imgs.evaluate_all("is => is.map(i => [i.naturalWidth, i.naturalHeight])")
    assert all(w > 0 and h > 0 for w, h in widths), widths
    assert max(max(w, h) for w, h in widths) <= 320  # thumbnails, not the full images
    legend = section.locator("figcaption > span")  # the colour key beside the title
    assert [w for w in legend.inner_text().split() if w.isalpha()] == ["missed", "false", "found"]
    swatches = legend.locator("span").evaluate_all("ss => ss.map(s => getComputedStyle(s).color)")
    assert swatches == ["rgb(220, 38, 38)", "rgb(217, 119, 6)", "rgb(22, 163, 74)"], swatches  # red, orange, green
    text = section.inner_text()
    assert f"{gallery['counts']['missed']:,} of {gallery['counts']['faces']:,} faces missed" in text, text
    # every count under a thumbnail is the run's
    captions = [next(line for line in c.splitlines() if "missed," in line)
                for c in section.locator("li").all_inner_texts()]
    assert captions == [f"{i['missed']:,} missed, {i['false']:,} false, {i['found']:,} found"
                        for i in gallery["images"]]
    # offline and clean
    remote = [u for u in watch.requests if not u.startswith(("file:", "data:"))]
    assert remote == [] and watch.errors == [], (remote, watch.errors)
    # the size cap: the images the page carries, and the page file as a whole
    srcs = imgs.evaluate_all("is => is.map(i => i.getAttribute('src').length)")
    assert sum(srcs) <= MAX_GALLERY_BYTES, sum(srcs)
    size = run.page_path.stat().st_size
    assert size <= MAX_GALLERY_BYTES + PAGE_OVERHEAD_BYTES, size
    watch.screenshot("detection-gallery.png")


def test_fddb_run_page_shows_its_roc_and_gallery(tmp_path, watch, monkeypatch):
    """The FDDB protocol's page (the hand-computed run of test_detection_protocols): the discrete
    ROC drawn, the budget table with intervals, and its gallery images decoded."""
    from harness.cli import main
    from harness.registry import Registry, reset_registry
    from harness.results import RunStore
    from tests.harness.tasks.test_detection_protocols import Fixtures

    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    cfg = tmp_path / "intervals.yaml"
    cfg.write_text(f"intervals:\n  bootstrap: {B}\n")
    reset_registry(Registry(plugins=[Fixtures]))
    try:
        code = main(["run", "--config", str(cfg), "--detector", "fixed_boxes", "--eval", "ellipse_set",
                     "--reports", str(tmp_path / "reports")])
    finally:
        reset_registry(None)
    assert code == 0
    (run,) = RunStore(tmp_path / "reports").runs()
    page = watch.open(run.page_path)
    roc = page.locator('section#fddb-roc svg.plot[data-plot="fddb-roc"] path.series')
    assert roc.count() == 1 and roc.get_attribute("d").count("L") >= 1
    rows = page.locator("#fddb-points tbody tr")
    assert rows.count() == 3 and rows.first.locator("td").all_inner_texts()[:2] == ["≤ 100", "33.33%"]
    assert page.locator('.metric[data-metric="fddb_tpr_at_fp_1000"] .ci').count() == 1  # the headline card
    imgs = page.locator("section#detection-gallery img")
    page.wait_for_function("() => [...document.querySelectorAll('#detection-gallery img')].every(i => i.complete)")
    assert imgs.count() >= 1 and all(w > 0 for w in imgs.evaluate_all("is => is.map(i => i.naturalWidth)"))
    assert "ellipse" in page.locator("section#detection-gallery").inner_text()
    remote = [u for u in watch.requests if not u.startswith(("file:", "data:"))]
    assert remote == [] and watch.errors == [], (remote, watch.errors)
    watch.screenshot("detection-fddb.png")
