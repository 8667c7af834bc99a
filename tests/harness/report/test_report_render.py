"""Rendering without a browser: escaping, template search order, offline pages,
unreadable results, formatting, SVG, and parallel runs leaving a valid index."""

from __future__ import annotations

import html.parser
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from harness.report import ReportError, render_all, render_reports, render_run
from harness.report import _format as F
from harness.report._svg import Series, hist_chart, line_chart
from harness.results import RunStore


class _Tags(html.parser.HTMLParser):
    """Collects tags and attributes; fails on nothing (HTML is forgiving), so
    tests assert on what it found."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _parse(path: Path) -> _Tags:
    p = _Tags()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_pages_are_offline_and_self_contained(rendered):
    pages = [rendered["index"], *(rendered["reports"] / "grids").glob("*.html"),
             *(r.page_path for r in rendered["reports"].glob("runs/*") for r in [type(rendered["runs"]["detection"])(r)])]
    assert len(pages) == 11
    for page in pages:
        text = page.read_text()
        assert text.rstrip().endswith("</html>"), page
        tags = _parse(page).tags
        for tag, attrs in tags:
            for key in ("src", "href"):
                url = attrs.get(key, "") or ""
                assert not url.startswith(("http:", "https:", "//")) or tag == "a", (page, tag, url)
            assert not (tag == "link" and attrs.get("rel") == "stylesheet"), page
            assert not (tag == "script" and attrs.get("src")), page
        assert any(tag == "style" for tag, _ in tags)


def test_rendered_from_results_json_alone(rendered, tmp_path, make):
    store = RunStore(tmp_path)
    run = make.write_verification_run(store, seed=11)
    for extra in run.path.iterdir():
        if extra.name != "results.json":
            extra.unlink()
    page = render_run(run)
    text = page.read_text()
    assert 'data-plot="roc"' in text and "lfw-folds" in text


def test_script_in_user_strings_is_escaped(tmp_path, make):
    store = RunStore(tmp_path)
    evil = "<script>alert('x')</script>"
    comps = make.recognition_components("resnet20", "arcface")
    comps["backbone"]["summary"] = evil
    comps["loss"]["paper"] = "javascript:alert(1)"
    body = make.verification_results(1, n_pairs=200)
    body["protocol"]["dataset"] = f"/data/{evil}"
    body["metrics"][0] = {"name": evil, "value": 0.5, "direction": "higher", "convention": evil}
    run = make.write_run(store, "recognition", body, comps, name=evil, grid_id=evil)
    index = render_all(tmp_path)
    for page in [run.page_path, index, *(tmp_path / "grids").glob("*.html")]:
        text = page.read_text()
        assert "<script>alert" not in text, page
        assert "&lt;script&gt;alert(" in text, page
        assert 'href="javascript' not in text, page
        assert sum(1 for tag, _ in _parse(page).tags if tag == "script") <= 1, page
    assert len(list((tmp_path / "grids").glob("*.html"))) == 1


def test_template_search_order(tmp_path, make, monkeypatch):
    store = RunStore(tmp_path / "reports")
    run = make.write_detection_run(store)
    # built-in
    assert "Detection" in render_run(run).read_text()
    # a plugin folder (extra dir) overrides the built-in, extending it by its builtin/ name
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "run.html").write_text(
        '{% extends "builtin/run.html" %}{% block protocol %}<p id="plugin">plugin {{ task }}</p>{% endblock %}'
    )
    text = render_run(run, extra_template_dirs=[plugin]).read_text()
    assert '<p id="plugin">plugin detection</p>' in text and "Average precision" in text
    # reports/_templates beats the plugin
    user = tmp_path / "reports" / "_templates"
    user.mkdir()
    (user / "run.html").write_text("user page for {{ run_id }} {{ name }}")
    assert render_run(run, extra_template_dirs=[plugin]).read_text().startswith(f"user page for {run.run_id}")
    # FACEBENCH_TEMPLATES beats both
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "run.html").write_text("env {{ title }}")
    monkeypatch.setenv("FACEBENCH_TEMPLATES", str(env_dir))
    assert render_run(run).read_text() == "env yunet"
    # broken templates and folders give clear errors
    (env_dir / "run.html").write_text("{% if %}")
    with pytest.raises(ReportError, match=r"run.html:1 has a syntax error"):
        render_run(run)
    (env_dir / "run.html").write_text("{{ no_such_field }}")
    with pytest.raises(ReportError, match="fields of RunPage"):
        render_run(run)
    monkeypatch.setenv("FACEBENCH_TEMPLATES", str(tmp_path / "missing"))
    with pytest.raises(ReportError, match="not a folder"):
        render_run(run)


def test_unreadable_and_unfinished_runs_are_listed_not_fatal(tmp_path, make):
    store = RunStore(tmp_path)
    good = make.write_liveness_run(store)
    broken = store.create("broken", "b1")
    broken.results_path.write_text('{"schema_version": 1, "task": ')
    pending = store.create("pending", "p1")
    summary = render_reports(tmp_path)
    assert [p.parent.name for p in summary.run_pages] == [good.run_id]
    assert [rid for rid, _ in summary.problems] == [broken.run_id]
    text = summary.index.read_text()
    assert broken.run_id in text and "not valid JSON" in text
    assert pending.run_id in text and "running" in text
    assert not broken.page_path.exists()


def test_render_selected_runs_only(tmp_path, make):
    store = RunStore(tmp_path)
    a = make.write_liveness_run(store, seed=1)
    b = make.write_liveness_run(store, seed=2)
    summary = render_reports(tmp_path, runs=[a.run_id])
    assert summary.run_pages == [a.page_path] and not b.page_path.exists()
    assert b.run_id in summary.index.read_text()


def test_empty_reports_folder_has_an_index(tmp_path):
    index = render_all(tmp_path / "new")
    assert "No runs yet" in index.read_text()


@pytest.mark.parametrize("name, value, text", [
    ("lfw_accuracy", 0.99383, "99.38%"),
    ("tar_at_far_1e-4", 0.8712, "87.12%"),
    ("eer", 0.0123, "1.23%"),
    ("auc", 0.99871, "0.9987"),
    ("far_at_eer", 0.00031, "3.1e-4"),
    ("psnr", 31.419, "31.42 dB"),
    ("ssim", 0.93123, "0.9312"),
    ("ap_hard", 0.611, "61.10%"),
    ("ms_per_image", 41.73, "41.73"),
    ("images", 200.0, "200"),
    ("eer", None, "n/a"),
    ("eer", float("nan"), "n/a"),
])
def test_metric_formatting(name, value, text):
    assert F.fmt_metric(name, value) == text


def test_metric_labels_and_far():
    assert F.metric_label("tar_at_far_1e-4") == "TAR @ FAR 1e-4"
    assert F.metric_label("lfw_accuracy") == "LFW accuracy"
    assert F.fmt_far(0.001) == "1e-3" and F.fmt_far(0) == "0" and F.fmt_far(0.05) == "5.00%"
    assert F.fmt_metric("latency", 3.0, {"unit": "ms"}) == "3 ms"


def test_svg_line_chart_log_axes_and_thinning():
    import math

    far = [0.0] + [10 ** (-6 + 6 * i / 5999) for i in range(6000)]
    tar = [min(1.0, 0.5 + 0.1 * (math.log10(f) + 6)) if f else 0.0 for f in far]
    svg = str(line_chart([Series("run <a>", far, tar)], kind="roc", title="ROC", x_label="FAR",
                         y_label="TAR", x_log=True, x_lim=(1e-6, 1.0), y_lim=(0.0, 1.0)))
    assert svg.count("<svg") == 1 and 'data-plot="roc"' in svg
    assert "run &lt;a&gt;" in svg and "run <a>" not in svg
    d = svg.split(' d="')[1].split('"')[0]
    assert d.startswith("M") and 20 < d.count("L") < 1200  # thinned, far fewer than 6,000 points
    assert "10<tspan" in svg  # decade labels on the log axis
    empty = str(line_chart([], kind="x", title="t", x_label="x", y_label="y"))
    assert "no data" in empty


def test_svg_histogram_is_a_density():
    svg = str(hist_chart([("genuine", [0, 1, 2], [10, 30]), ("bad", [0, 1], [1, 2])],
                         kind="hist", title="h", x_label="score"))
    assert svg.count('class="series"') == 1  # the malformed histogram is left out
    assert "density" in svg


_PARALLEL = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[3])
    import make_fixtures as mk
    from harness.report import render_all
    from harness.results import RunStore
    store = RunStore(sys.argv[1])
    for k in range(2):
        mk.write_verification_run(store, seed=int(sys.argv[2]) * 10 + k, grid_id="parallel",
                                  backbone=f"net{sys.argv[2]}x{k}", separation=2.5, n_pairs=600)
        render_all(sys.argv[1])
    print("done")
""")


def test_parallel_runs_leave_a_valid_index(tmp_path):
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "results"
    reports = tmp_path / "reports"
    procs = [subprocess.Popen([sys.executable, "-c", _PARALLEL, str(reports), str(i), str(fixtures)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    seen_partial = []
    stop = threading.Event()

    def reader():  # readers during the writes only ever see whole pages
        index = reports / "index.html"
        while not stop.is_set():
            stop.wait(0.01)
            try:
                text = index.read_text()
            except FileNotFoundError:
                continue
            if not text.rstrip().endswith("</html>"):
                seen_partial.append(len(text))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
    finally:
        stop.set()
        t.join()
    assert seen_partial == []
    runs = RunStore(reports).runs()
    assert len(runs) == 8
    index = (reports / "index.html").read_text()
    assert index.rstrip().endswith("</html>")
    for run in runs:
        assert run.run_id in index
        assert run.page_path.exists()
        assert run.read_results()["status"] == "finished"
    grid = (reports / "grids" / "parallel.html").read_text()
    assert grid.count("<tr>") - 1 == 8  # header row + one row per run
    assert not list(reports.rglob("*.tmp"))


def test_unchanged_run_pages_are_not_rerendered(tmp_path, make):
    store = RunStore(tmp_path)
    a = make.write_liveness_run(store, seed=1)
    b = make.write_liveness_run(store, seed=2)
    assert len(render_reports(tmp_path).run_pages) == 2
    assert render_reports(tmp_path).run_pages == []
    data = a.read_results()
    data["name"] = "renamed"
    os.utime(a.page_path, ns=(0, 0))  # results now newer than the page
    a.write_results(data)
    assert render_reports(tmp_path).run_pages == [a.page_path]
    assert "renamed" in a.page_path.read_text()
    assert len(render_reports(tmp_path, force=True).run_pages) == 2
    assert b.page_path.exists()
