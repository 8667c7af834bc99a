"""The results store: one folder per run under ``reports/runs/``.

Layout of a run folder (``reports/runs/<run-id>/``)::

    run.json        identity of the run (run id, slug, config hash, grid id),
                    written when the folder is created
    results.json    schema-versioned results, provenance first (see below)
    scores.npz      raw arrays (scores, labels, ...) saved with save_arrays()
    run.log         the run's log
    checkpoints/    training checkpoints (made on demand)
    index.html      the run page, rendered from results.json by harness.report

``run-id`` is the UTC start time, the combination's slug and its config hash:
``20250101-120000-resnet20-arcface-1a2b3c4d5e``.  A second run of the same
config in the same second gets a ``-2`` suffix.

Every file is written atomically: the bytes go to a temporary file in the
same folder, are flushed to disk, and the temporary file is renamed over the
target.  A reader (or a run killed half way) therefore sees either the old
complete file or the new complete file, never a truncated one.

``results.json`` (schema version 1)::

    {"schema_version": 1, "run_id": ..., "status": "running|finished|failed",
     "task": "recognition|detection|landmarks|liveness|inpainting|scores",
     "name": optional user label, "config_hash": ...,
     "provenance": {...},     # see collect_provenance()
     "protocol": {...},       # dataset, pairs, folds, detector, alignment, ...
     "metrics": [Metric.to_dict(), ...],
     "sections": {...},       # lfw, tar_at_far, operating_points, detection, ...
     "curves": {...}}         # roc, det, hist, training, pr

This module is floor 1: it imports only the standard library, numpy,
:mod:`harness.errors` and :mod:`harness.metrics._record`.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import io
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from harness._values import finite_float
from harness.atomic import atomic_output
from harness.errors import DataError, HarnessError
from harness.metrics._record import Metric

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "TASKS",
    "ResultsError",
    "RunDir",
    "RunStore",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "collect_provenance",
    "to_jsonable",
]

SCHEMA_VERSION = 1
STATUSES = ("running", "finished", "failed")
TASKS = ("recognition", "detection", "landmarks", "tracking", "liveness", "inpainting", "scores")
RESULTS_FILE = "results.json"
RUN_FILE = "run.json"
PAGE_FILE = "index.html"
_REQUIRED = ("task", "provenance", "metrics")
_TOP_ORDER = ("schema_version", "run_id", "status", "task", "name", "config_hash", "provenance")


class ResultsError(HarnessError):
    """Results that cannot be written or read as they are."""


# ----------------------------------------------------------------- atomic IO
def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old or the new file,
    never part of one (:func:`harness.atomic.atomic_output`)."""
    with atomic_output(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically.

    numpy scalars and arrays are converted; NaN and infinities become ``null``
    (JSON has no NaN), so every file written here is strict JSON.
    """
    text = json.dumps(to_jsonable(obj), indent=1, ensure_ascii=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def to_jsonable(obj: Any) -> Any:
    """A strict-JSON copy of ``obj``: numpy → Python, NaN/inf → None, Metric → dict."""
    if isinstance(obj, Metric):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite_float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    raise ResultsError(
        f"cannot store a {type(obj).__name__} in results.json ({obj!r:.80}): expected numbers, "
        "strings, lists, dicts, numpy values or Metric records — convert it first"
    )


def _utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


# --------------------------------------------------------------------- runs
class RunDir:
    """One run's folder.  Use :meth:`RunStore.create` to make one.

    :ivar path: the folder, ``reports/runs/<run-id>``.
    :ivar run_id: its name.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.run_id = self.path.name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(str(self.path.resolve()))

    # ------------------------------------------------------------ identity
    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def page_path(self) -> Path:
        """Where the rendered run page lives."""
        return self.path / PAGE_FILE

    @property
    def log_path(self) -> Path:
        """The run's log file (its folder exists; the file is made by the writer)."""
        return self.path / "run.log"

    @property
    def checkpoint_dir(self) -> Path:
        """``checkpoints/`` inside the run folder, created on first use."""
        d = self.path / "checkpoints"
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def info(self) -> dict[str, Any]:
        """The identity record written at creation (``run.json``); {} when absent."""
        try:
            data = json.loads((self.path / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def config_hash(self) -> str | None:
        return self.info.get("config_hash")

    @property
    def grid_id(self) -> str | None:
        return self.info.get("grid_id")

    @property
    def has_results(self) -> bool:
        return self.results_path.is_file()

    @property
    def status(self) -> str:
        """``running``/``finished``/``failed`` from results.json; ``running``
        when no results were written yet, ``corrupt`` when they cannot be read."""
        if not self.has_results:
            return "running"
        try:
            return str(self.read_results().get("status", "running"))
        except ResultsError:
            return "corrupt"

    # ------------------------------------------------------------- results
    def write_results(self, results: Mapping[str, Any]) -> Path:
        """Validate ``results`` and write them to ``results.json`` atomically.

        ``schema_version`` and ``run_id`` are added, ``status`` defaults to
        ``"finished"``, ``Metric`` objects become dicts, NaN becomes null, and
        the keys are ordered provenance first.

        :raises ResultsError: a required key (task, provenance, metrics) is
            missing or has the wrong type, or the status/task is unknown.
        """
        if not isinstance(results, Mapping):
            raise ResultsError(f"results must be a dict, got {type(results).__name__}")
        missing = [k for k in _REQUIRED if k not in results]
        if missing:
            raise ResultsError(
                f"results for run {self.run_id} lack {', '.join(map(repr, missing))}: every "
                f"results.json needs {', '.join(_REQUIRED)} (provenance from "
                "harness.results.collect_provenance(), metrics as a list of Metric records)"
            )
        data = dict(results)
        data["schema_version"] = SCHEMA_VERSION
        data["run_id"] = self.run_id
        data.setdefault("status", "finished")
        if data["status"] not in STATUSES:
            raise ResultsError(
                f"results status {data['status']!r} is not one of {', '.join(STATUSES)}"
            )
        if data["task"] not in TASKS:
            raise ResultsError(f"results task {data['task']!r} is not one of {', '.join(TASKS)}")
        if not isinstance(data["provenance"], Mapping):
            raise ResultsError(
                "results 'provenance' must be a dict (use harness.results.collect_provenance())"
            )
        if not isinstance(data["metrics"], (list, tuple)):
            raise ResultsError(
                "results 'metrics' must be a list of Metric records or their to_dict() dicts, "
                f"got {type(data['metrics']).__name__}"
            )
        metrics = []
        for i, m in enumerate(data["metrics"]):
            if isinstance(m, Metric):
                m = m.to_dict()
            if not isinstance(m, Mapping) or "name" not in m or "value" not in m:
                raise ResultsError(
                    f"results metric #{i} ({m!r:.60}) is not a Metric record: expected a "
                    "harness.metrics.Metric or a dict with at least 'name' and 'value'"
                )
            metrics.append(dict(m))
        data["metrics"] = metrics
        if "config_hash" not in data and self.config_hash:
            data["config_hash"] = self.config_hash
        for key in ("sections", "curves", "protocol"):
            if key in data and not isinstance(data[key], Mapping):
                raise ResultsError(f"results {key!r} must be a dict, got {type(data[key]).__name__}")
        ordered = {k: data[k] for k in _TOP_ORDER if k in data}
        ordered.update((k, v) for k, v in data.items() if k not in ordered)
        return atomic_write_json(self.results_path, ordered)

    def read_results(self) -> dict[str, Any]:
        """Read ``results.json``.

        :raises ResultsError: it is missing, not JSON, or of a newer schema.
        """
        try:
            text = self.results_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ResultsError(
                f"{self.results_path} does not exist: run {self.run_id} has written no results "
                "yet (still running, or it failed before its first write)"
            ) from None
        except OSError as exc:
            raise ResultsError(f"cannot read {self.results_path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ResultsError(
                f"{self.results_path} is not valid JSON ({exc}); it was not written by facebench "
                "or was edited by hand — restore it or rerun with --force"
            ) from None
        if not isinstance(data, dict):
            raise ResultsError(f"{self.results_path}: expected a JSON object at the top level")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ResultsError(
                f"{self.results_path} has schema_version {version!r}; this facebench reads "
                f"versions up to {SCHEMA_VERSION} — upgrade facebench to read it"
            )
        return data

    def set_status(self, status: str) -> Path:
        """Rewrite only the status of existing results (e.g. to ``failed``)."""
        data = self.read_results()
        data["status"] = status
        return self.write_results(data)

    # -------------------------------------------------------------- arrays
    def save_arrays(self, name: str, **arrays: Any) -> Path:
        """Save arrays as ``<name>.npz`` (compressed) atomically; returns the path."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
            raise ResultsError(
                f"array file name {name!r} is invalid: use letters, digits, '_', '-' or '.'"
            )
        if not arrays:
            raise ResultsError(f"save_arrays({name!r}) got no arrays: pass them as keywords")
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        return atomic_write_bytes(self._npz(name), buf.getvalue())

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        """Load ``<name>.npz`` into a dict of arrays."""
        path = self._npz(name)
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise DataError(
                f"{path} does not exist: run {self.run_id} saved no arrays named {name!r}"
            ) from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not a readable .npz file: {exc}") from None

    def _npz(self, name: str) -> Path:
        return self.path / (name if name.endswith(".npz") else f"{name}.npz")


class RunStore:
    """All runs under ``<reports_dir>/runs``.

    :param reports_dir: the reports folder (``reports`` by default).
    """

    def __init__(self, reports_dir: str | Path = "reports") -> None:
        self.reports_dir = Path(reports_dir)
        self.runs_dir = self.reports_dir / "runs"

    def __repr__(self) -> str:
        return f"RunStore({str(self.reports_dir)!r})"

    def check_writable(self) -> None:
        """Check, without writing anything, that runs can be stored here.

        ``reports_dir`` and ``runs/`` must be folders or not exist yet; the
        nearest existing folder on the way must be writable.  Call it before
        work starts, so a bad ``--reports`` costs nothing and leaves nothing.

        :raises ResultsError: a path on the way is a file, or the folder is
            not writable (permissions, read-only file system).
        """
        fix = "pass --reports with a folder you can write to"
        for path in (self.runs_dir, self.reports_dir, *self.reports_dir.parents):
            if path.is_dir():
                break
            if path.exists() or path.is_symlink():
                what = "the reports folder" if path == self.reports_dir else f"a part of {self.reports_dir}"
                raise ResultsError(f"{path} is a file, not a folder (it is {what}); {fix}")
        else:  # pragma: no cover - the root of the file system is a folder
            return
        if not os.access(path, os.W_OK | os.X_OK):
            why = "is on a read-only file system" if _read_only_fs(path) else "is not writable"
            raise ResultsError(f"cannot store runs under {self.reports_dir}: {path} {why}; {fix}")

    def create(self, slug: str, config_hash: str, *, grid_id: str | None = None) -> RunDir:
        """Make a new run folder ``runs/<UTC time>-<slug>-<config_hash>``.

        Safe against parallel callers: the folder is claimed with an atomic
        ``mkdir``; a clash in the same second gets a ``-2``, ``-3`` … suffix.
        """
        slug = re.sub(r"[^a-z0-9_.-]+", "-", str(slug).lower()).strip("-.") or "run"
        if not re.fullmatch(r"[A-Za-z0-9]+", str(config_hash)):
            raise ResultsError(
                f"config hash {config_hash!r} is invalid: expected letters and digits "
                "(RunSpec.config_hash())"
            )
        self.check_writable()
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(
                f"cannot make {self.runs_dir} ({exc.strerror}); pass --reports with a folder you can write to"
            ) from None
        now = _utc_now()
        base = f"{now:%Y%m%d-%H%M%S}-{slug}-{config_hash}"
        for n in range(1, 10_000):
            run_id = base if n == 1 else f"{base}-{n}"
            try:
                (self.runs_dir / run_id).mkdir()
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - 10,000 runs of one config in one second
            raise ResultsError(f"cannot make a run folder for {base} in {self.runs_dir}")
        run = RunDir(self.runs_dir / run_id)
        atomic_write_json(
            run.path / RUN_FILE,
            {
                "run_id": run_id,
                "slug": slug,
                "config_hash": config_hash,
                "grid_id": grid_id,
                "created": now.isoformat(timespec="microseconds"),
                "created_ns": _time_ns(),
            },
        )
        return run

    def runs(self) -> list[RunDir]:
        """Every run folder, newest first (temporaries of writers that died are swept on the way)."""
        from harness.atomic import sweep_stale

        if not self.runs_dir.is_dir():
            return []
        found = []
        sweep_stale(self.runs_dir)
        for p in self.runs_dir.iterdir():
            if p.is_dir() and not p.name.startswith((".", "_")):
                sweep_stale(p, recursive=True)
        for p in self.runs_dir.iterdir():
            if p.is_dir() and not p.name.startswith((".", "_")):
                run = RunDir(p)
                found.append((_created_key(run), run.run_id, run))
        found.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [t[2] for t in found]

    def get(self, ref: str | Path) -> RunDir:
        """A run by id, unique id prefix, or folder path.

        :raises ResultsError: no run or several runs match.
        """
        p = Path(ref)
        if p.is_dir() and ((p / RUN_FILE).exists() or (p / RESULTS_FILE).exists()):
            return RunDir(p)
        runs = self.runs()
        exact = [r for r in runs if r.run_id == str(ref)]
        if exact:
            return exact[0]
        matches = [r for r in runs if r.run_id.startswith(str(ref))]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            hint = ", ".join(r.run_id for r in runs[:3]) or "none yet"
            raise ResultsError(
                f"no run {str(ref)!r} in {self.runs_dir}: give a run id, a unique prefix of one, "
                f"or a run folder (newest: {hint}; `harness runs` lists them)"
            )
        raise ResultsError(
            f"run {str(ref)!r} is ambiguous in {self.runs_dir}: it starts "
            f"{', '.join(r.run_id for r in matches[:5])} — give more of the id"
        )

    def _with_hash(self, config_hash: str) -> Iterable[RunDir]:
        for run in self.runs():
            if run.config_hash == config_hash:
                yield run

    def find_finished(self, config_hash: str) -> RunDir | None:
        """The newest run of this config whose results say ``finished``, or None."""
        for run in self._with_hash(config_hash):
            if run.status == "finished":
                return run
        return None

    def find_unfinished(self, config_hash: str) -> RunDir | None:
        """The newest run of this config that did not finish (to resume it), or None."""
        for run in self._with_hash(config_hash):
            if run.status != "finished":
                return run
        return None


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _time_ns() -> int:
    import time

    return time.time_ns()


def _created_key(run: RunDir) -> int:
    ns = run.info.get("created_ns")
    if isinstance(ns, int):
        return ns
    try:
        return int(run.path.stat().st_mtime_ns)
    except OSError:
        return 0


# --------------------------------------------------------------- provenance
#: distributions whose versions are recorded when installed (never imported).
FRAMEWORK_DISTS = (
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "dlib",
    "dlib-bin",
    "face-recognition-models",
    "onnxruntime",
    "opencv-python-headless",
    "opencv-python",
    "scikit-image",
    "jinja2",
    "pluggy",
)


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _plugin_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        eps = importlib.metadata.entry_points(group="facebench")
    except Exception:  # pragma: no cover - broken metadata must not break a run
        return out
    for ep in eps:
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out[dist.name] = dist.version
    return dict(sorted(out.items()))


def _git_commit() -> dict[str, Any] | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {
        "commit": commit.stdout.strip(),
        "dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None,
    }


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _hardware() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    cpu_model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": cpu_model,
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "memory_bytes": _memory_bytes(),
    }


def collect_provenance(
    config: Mapping[str, Any],
    components: Mapping[str, Mapping[str, Any]],
    seed: int,
    *,
    grid_id: str | None = None,
) -> dict[str, Any]:
    """Everything needed to say where a result came from, config first.

    :param config: the run's configuration (``RunSpec.to_dict()``).
    :param components: kind → ``ComponentSpec.describe()`` dict of each component used.
    :param seed: the random seed.
    :param grid_id: the grid this run belongs to (runs of one ``harness run``
        invocation share it; the comparison page groups by it).
    :returns: a JSON-ready dict: config, components, versions (facebench,
        plugins, frameworks — read from package metadata, nothing imported),
        git (commit and dirty flag, or None outside a checkout), seed,
        hardware, created (UTC ISO time), grid_id.
    """
    return to_jsonable(
        {
            "config": dict(config),
            "components": {k: dict(v) for k, v in components.items()},
            "versions": {
                "facebench": _dist_version("facebench"),
                "plugins": _plugin_versions(),
                "frameworks": {
                    n: v for n in FRAMEWORK_DISTS if (v := _dist_version(n)) is not None
                },
            },
            "git": _git_commit(),
            "seed": int(seed),
            "hardware": _hardware(),
            "created": _utc_now().isoformat(timespec="seconds"),
            "grid_id": grid_id,
        }
    )
