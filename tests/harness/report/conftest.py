"""Fixtures of the report tests: fixture results rendered once, a headless Chromium."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("FACEBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


def _load_fixtures_module():
    path = REPO / "tests" / "fixtures" / "results" / "make_fixtures.py"
    spec = importlib.util.spec_from_file_location("facebench_results_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


fixtures_module = _load_fixtures_module()


@pytest.fixture(scope="session")
def make():
    """The fixture-results module (tests/fixtures/results/make_fixtures.py)."""
    return fixtures_module


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """A reports folder with every kind of fixture run, rendered once.

    Returns a dict: reports (Path), runs (name -> RunDir or list), index (Path).
    """
    from harness.report import render_all

    reports = tmp_path_factory.mktemp("reports")
    runs = fixtures_module.build_all(reports)
    index = render_all(reports)
    return {"reports": reports, "runs": runs, "index": index}


def need_chromium():
    """The Playwright sync API, or skip — fail when FACEBENCH_REQUIRE_DATA=1 (CI)."""
    reason = ""
    try:
        from playwright import sync_api
    except ImportError:
        sync_api, reason = None, "playwright is not installed (pip install 'facebench[dev]')"
    if not reason and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set FACEBENCH_CHROMIUM)"
    if reason:
        if os.environ.get("FACEBENCH_REQUIRE_DATA") == "1":
            pytest.fail(reason + " — FACEBENCH_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(reason)
    return sync_api


@pytest.fixture(scope="module")
def browser():
    sync_api = need_chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageWatch:
    """A page plus every console error, page error and failed request it produced."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: Path):
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self.page

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        out = ARTIFACTS / name
        self.page.screenshot(path=str(out), full_page=True)
        return out

    def close(self):
        self.page.close()


@pytest.fixture
def watch(browser):
    w = PageWatch(browser)
    yield w
    w.close()
