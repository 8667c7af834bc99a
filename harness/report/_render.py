"""Write the HTML pages: run pages, grid comparison pages and the index.

Templates are looked up in this order, first match wins:

1. user folders: ``$FACEBENCH_TEMPLATES`` (one or more folders separated by
   ``os.pathsep``), then ``<reports>/_templates``;
2. extra folders passed by the caller (plugins' template folders);
3. the built-in templates in ``harness/report/templates``.

A built-in template is also reachable as ``builtin/<name>``, so an override
can ``{% extends "builtin/run.html" %}`` and replace one block only.

Jinja2 runs with autoescape on: every string from results (run name, dataset
path, plugin summary …) is escaped; only the server-drawn SVG is marked safe.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.errors import HarnessError
from harness.report import _build
from harness.report.context import Link, as_template_vars
from harness.results import (
    PAGE_FILE,
    ResultsError,
    RunDir,
    RunStore,
    atomic_write_text,
)

__all__ = ["RenderSummary", "ReportError", "environment", "render_all", "render_reports", "render_run",
           "template_dirs"]

log = logging.getLogger("harness.report")

BUILTIN_TEMPLATES = Path(__file__).resolve().parent / "templates"
GRIDS_DIR = "grids"
LOCK_FILE = ".render.lock"
LOCK_TIMEOUT_S = 300


class ReportError(HarnessError):
    """A report that cannot be rendered (bad template, unreadable folder)."""


@dataclass
class RenderSummary:
    """What :func:`render_reports` wrote.

    :param index: ``reports/index.html``.
    :param run_pages: run pages written.
    :param grid_pages: comparison pages written.
    :param problems: (run id, message) for runs that could not be rendered.
    """

    index: Path
    run_pages: list[Path] = field(default_factory=list)
    grid_pages: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def template_dirs(reports_dir: str | Path | None = None, extra: Sequence[str | Path] = ()) -> list[Path]:
    """The template search path: user folders, ``extra`` (plugins), built-ins."""
    dirs: list[Path] = []
    env = os.environ.get("FACEBENCH_TEMPLATES", "")
    for part in env.split(os.pathsep):
        if part.strip():
            p = Path(part.strip()).expanduser()
            if not p.is_dir():
                raise ReportError(
                    f"FACEBENCH_TEMPLATES names {p}, which is not a folder: set it to a folder "
                    "of template overrides (e.g. run.html) or unset it"
                )
            dirs.append(p)
    if reports_dir is not None:
        user = Path(reports_dir) / "_templates"
        if user.is_dir():
            dirs.append(user)
    for e in extra:
        p = Path(e)
        if not p.is_dir():
            raise ReportError(f"template folder {p} does not exist: pass an existing folder of templates")
        dirs.append(p)
    dirs.append(BUILTIN_TEMPLATES)
    return dirs


def environment(reports_dir: str | Path | None = None, extra_dirs: Sequence[str | Path] = ()) -> Any:
    """A Jinja2 environment with autoescape and the search path of :func:`template_dirs`."""
    import jinja2

    dirs = template_dirs(reports_dir, extra_dirs)
    loader = jinja2.ChoiceLoader([
        jinja2.FileSystemLoader([str(d) for d in dirs]),
        jinja2.PrefixLoader({"builtin": jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES))}),
    ])
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def _render(env: Any, name: str, page: Any) -> str:
    import jinja2

    try:
        return env.get_template(name).render(**as_template_vars(page))
    except jinja2.TemplateNotFound as exc:
        raise ReportError(f"template {exc.name!r} not found in {template_search(env)}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ReportError(
            f"template {exc.filename or exc.name}:{exc.lineno} has a syntax error: {exc.message}"
        ) from None
    except jinja2.UndefinedError as exc:
        raise ReportError(
            f"template {name!r} uses an undefined variable ({exc.message}); the variables it gets are "
            f"the fields of {type(page).__name__} (see harness/report/context.py)"
        ) from None


def template_search(env: Any) -> str:
    loaders = getattr(env.loader, "loaders", [])
    paths = getattr(loaders[0], "searchpath", []) if loaders else []
    return ", ".join(paths) or "(no folders)"


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _reports_dir_of(run: RunDir) -> Path | None:
    return run.path.parent.parent if run.path.parent.name == "runs" else None


def _grid_path(reports_dir: Path, grid_id: str) -> Path:
    return reports_dir / GRIDS_DIR / f"{_build.safe_name(grid_id)}.html"


def _grid_of(results: dict[str, Any] | None, run: RunDir) -> str | None:
    gid = _build._dict((results or {}).get("provenance")).get("grid_id") or run.grid_id
    return str(gid) if gid else None


def render_run(
    run_dir: RunDir | str | Path,
    *,
    extra_template_dirs: Sequence[str | Path] = (),
    env: Any = None,
) -> Path:
    """Render one run's page (``<run>/index.html``) from its ``results.json``.

    :raises ResultsError: the run has no readable results.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    results = run.read_results()
    reports_dir = _reports_dir_of(run)
    env = env or environment(reports_dir, extra_template_dirs)
    grid = _grid_of(results, run)
    index_href = _rel(reports_dir / "index.html", run.path) if reports_dir else ""
    grid_href = _rel(_grid_path(reports_dir, grid), run.path) if (reports_dir and grid) else ""
    page = _build.build_run_page(results, index_href=index_href, grid_href=grid_href)
    return atomic_write_text(run.page_path, _render(env, "run.html", page))


def render_reports(
    reports_dir: str | Path = "reports",
    *,
    runs: Iterable[str | Path | RunDir] | None = None,
    extra_template_dirs: Sequence[str | Path] = (),
    force: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> RenderSummary:
    """Render run pages (all, or only ``runs``), every grid page and the index,
    holding ``<reports>/.render.lock`` so parallel callers never interleave.

    A run page newer than its ``results.json``, every template in the search
    path and the renderer's code is up to date and left alone unless
    ``force`` (``harness report`` forces); grid pages and the index are always
    rebuilt, since they depend on every run.

    A run whose results cannot be read is listed in the index with the reason
    and reported in :attr:`RenderSummary.problems`; it does not stop the rest.
    """
    import filelock

    reports = Path(reports_dir)
    reports.mkdir(parents=True, exist_ok=True)
    store = RunStore(reports)
    lock = filelock.FileLock(str(reports / LOCK_FILE), timeout=lock_timeout)
    try:
        with lock:
            return _render_locked(reports, store, runs, extra_template_dirs, force)
    except filelock.Timeout:
        raise ReportError(
            f"another process has held {reports / LOCK_FILE} for over {lock_timeout:.0f} s: wait for "
            "it to finish, or delete the lock file if no facebench process is running"
        ) from None


def render_all(reports_dir: str | Path = "reports", *, extra_template_dirs: Sequence[str | Path] = ()) -> Path:
    """Render every run page, every grid's comparison page and ``reports/index.html``.

    :returns: the index path.
    """
    return render_reports(reports_dir, extra_template_dirs=extra_template_dirs).index


def _newest_source(dirs: Sequence[Path]) -> int:
    """mtime of the newest template in the search path or renderer module."""
    newest = 0
    files = [*Path(__file__).parent.glob("*.py")]
    for d in dirs:
        files += [p for p in d.rglob("*") if p.is_file()]
    for f in files:
        try:
            newest = max(newest, f.stat().st_mtime_ns)
        except OSError:
            pass
    return newest


def _up_to_date(run: RunDir, newest_source: int) -> bool:
    try:
        page = run.page_path.stat().st_mtime_ns
        return page >= run.results_path.stat().st_mtime_ns and page >= newest_source
    except OSError:
        return False


def _render_locked(reports: Path, store: RunStore, only: Iterable[Any] | None,
                   extra: Sequence[str | Path], force: bool = False) -> RenderSummary:
    env = environment(reports, extra)
    newest_source = 0 if force else _newest_source(template_dirs(reports, extra))
    summary = RenderSummary(index=reports / "index.html")
    wanted: set[str] | None = None
    if only is not None:
        wanted = {(r if isinstance(r, RunDir) else store.get(r)).run_id for r in only}

    loaded: list[tuple[RunDir, dict[str, Any] | None, str]] = []
    for run in store.runs():
        results, problem = None, ""
        if run.has_results:
            try:
                results = run.read_results()
            except ResultsError as exc:
                problem = str(exc)
        loaded.append((run, results, problem))

    # run pages
    for run, results, problem in loaded:
        if problem:
            summary.problems.append((run.run_id, problem))
            continue
        if results is None or (wanted is not None and run.run_id not in wanted):
            continue
        if not force and _up_to_date(run, newest_source):
            continue
        try:
            summary.run_pages.append(render_run(run, env=env))
        except ResultsError as exc:  # changed between the read above and now
            summary.problems.append((run.run_id, str(exc)))

    # grid pages
    grids: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run, results, _ in loaded:
        gid = _grid_of(results, run)
        if gid and results is not None:
            grids.setdefault(gid, []).append((run.run_id, results))
    grid_links: dict[str, Link] = {}
    for gid, members in grids.items():
        path = _grid_path(reports, gid)
        members = list(reversed(members))  # oldest first: the order the grid ran in
        page = _build.build_grid_page(
            gid, members,
            run_href=lambda rid: _rel(reports / "runs" / rid / PAGE_FILE, path.parent),
            index_href=_rel(reports / "index.html", path.parent),
        )
        summary.grid_pages.append(atomic_write_text(path, _render(env, "grid.html", page)))
        task = str(members[0][1].get("task", ""))
        grid_links[gid] = Link(f"{gid} ({len(members)} runs{', ' + task if task else ''})", _rel(path, reports))

    # index
    rows = []
    for run, results, problem in loaded:
        gid = _grid_of(results, run)
        href = _rel(run.page_path, reports) if (results is not None and run.page_path.exists()) else ""
        created = str(run.info.get("created", ""))
        row = _build.build_index_row(
            run.run_id, results, href=href, grid=grid_links.get(gid) if gid else None,
            created=_build.created_text({"provenance": {"created": created}}) if created else "",
            problem=problem,
        )
        rows.append((_build.group_key(results), row))
    page = _build.build_index_page(rows, sorted(grid_links.values(), key=lambda l: l.label))
    atomic_write_text(summary.index, _render(env, "index.html", page))
    for run_id, problem in summary.problems:
        log.warning("run %s not rendered: %s", run_id, problem)
    return summary
