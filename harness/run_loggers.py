"""Watching a run: training progress as TensorBoard event files and as an MLflow run.

Both engines report through one small contract, :class:`harness.types.RunLogger`
(``scalars(step, values)``, ``params(values)``, ``artifact(path)``, ``close(status)``),
and through one fan-out, :class:`RunLoggers`, that names the tags the same way for
every engine:

* ``train/loss``, ``train/lr``, ``train/img_per_s``, ``train/grad_norm`` (the global
  gradient norm before clipping) and ``train/accuracy`` (the batch's, for losses
  with a classifier) after every optimizer step;
* ``eval/<name>`` after every epoch, e.g. ``eval/val_accuracy`` (the verification
  accuracy the recognition task measures between epochs).

Writers:

* :class:`TensorBoardLogger` writes event files — ``tensorboard``'s own protos and
  record framing, into a plain file (no torch or TensorFlow imported) — into
  ``<run folder>/tensorboard/``, so
  ``tensorboard --logdir reports/runs`` shows every run.  A resumed run first
  writes a session-start event at the step it resumes from, so TensorBoard drops
  the steps the interrupted process logged after its last checkpoint.
* :class:`MLflowLogger` records an MLflow run through
  :class:`mlflow.tracking.MlflowClient`: params, per-step metrics (buffered,
  sent in batches), and — once the run is finished and its page rendered
  (:func:`record_grid`) — the report's ``results.json`` and ``index.html`` as
  artifacts, its metrics, and its final status.  The tracking URI is
  ``MLFLOW_TRACKING_URI`` when set, else a file store in ``<reports>/mlruns``;
  the experiment is ``MLFLOW_EXPERIMENT_NAME`` or ``facebench``.  The run's id
  is kept in ``<run folder>/mlflow.json``, so a resumed training run and its
  report land in the same MLflow run.  Whatever ran the grid records it when
  the grid ends: ``harness run`` in one process, rank 0 under torchrun, and
  under ``--launcher slurm|submitit-local`` each job its own cell, into the
  store and experiment of the submitting process (:func:`job_tracking`).

The selection (``harness run --log``, ``training.log``) is a tuple of names:
``()`` — the default — opens TensorBoard when the ``tensorboard`` package is
importable and nothing otherwise; ``("none",)`` opens nothing; ``tensorboard``
asks for it (an error when it is not installed); ``mlflow`` adds MLflow.

This module is floor 1: it imports only the standard library and floor-1 core
modules; ``tensorboard`` and ``mlflow`` are imported when a writer is opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import itertools
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from harness._values import did_you_mean, finite_float, one_line, short_repr
from harness.atomic import atomic_output
from harness.errors import ConfigError

__all__ = [
    "DEFAULT_EXPERIMENT", "LOGGERS", "MLFLOW_MARKER", "TENSORBOARD_DIR", "MLflowLogger", "RunLoggers",
    "TensorBoardLogger", "experiment_name", "flatten_params", "job_tracking", "normalise_selection",
    "open_training_loggers", "record_grid", "record_run", "require", "resolve", "tracking_uri",
]

#: logger name -> the module that must be importable
LOGGERS: Mapping[str, str] = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
NONE = "none"
#: the pip extra that installs every logger's package
EXTRA = "track"
_PIP = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny"}
TENSORBOARD_DIR = "tensorboard"
MLFLOW_MARKER = "mlflow.json"
DEFAULT_EXPERIMENT = "facebench"
#: MLflow statuses of a run's outcome
_MLFLOW_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED", "running": "KILLED"}
_KEY_BAD = re.compile(r"[^\w\-. /]")
#: numbers the event files this process opens (two in one second stay apart)
_EVENT_FILES = itertools.count()


# ---------------------------------------------------------------- selection
def normalise_selection(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """``--log`` values as a checked tuple: comma lists split, lower-cased, deduplicated.

    :raises ConfigError: an unknown name, or ``none`` beside another name.
    """
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"training.log={short_repr(values)}: expected logger names "
                              f"({', '.join([*LOGGERS, NONE])}), e.g. --log tensorboard,mlflow")
        names += [p.strip().lower() for p in item.split(",") if p.strip()]
    for name in names:
        if name not in (*LOGGERS, NONE):
            raise ConfigError(
                f"training.log: unknown logger {name!r}{did_you_mean(name, [*LOGGERS, NONE])} Valid loggers: "
                f"{', '.join([*LOGGERS, NONE])} (repeat --log or give a comma list: --log tensorboard,mlflow)")
    names = list(dict.fromkeys(names))
    if NONE in names and len(names) > 1:
        raise ConfigError(f"training.log: 'none' switches every logger off and cannot go with "
                          f"{', '.join(n for n in names if n != NONE)}; give one or the other")
    return tuple(names)


def _installed(module: str) -> bool:
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(selection: Sequence[str]) -> None:
    """Check that every logger asked for by name can be opened.

    :raises ConfigError: naming the missing package and the pip extra that installs it.
    """
    for name in normalise_selection(selection):
        if name != NONE and not _installed(LOGGERS[name]):
            raise ConfigError(
                f"--log {name}: the {LOGGERS[name]} package is not installed; install it with "
                f"pip install 'facebench[{EXTRA}]' (or pip install {_PIP[name]}), or drop --log {name}")


def resolve(selection: Sequence[str]) -> tuple[str, ...]:
    """The loggers a run opens: the names given (checked with :func:`require`), plus
    TensorBoard when it is importable and neither ``none`` nor ``tensorboard`` was given."""
    names = normalise_selection(selection)
    require(names)
    if NONE in names:
        return ()
    auto = ("tensorboard",) if "tensorboard" not in names and _installed("tensorboard") else ()
    return tuple(n for n in LOGGERS if n in names or n in auto)


# --------------------------------------------------------------- parameters
def flatten_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as ``{"a.b": "text"}``: strings as they are, everything else as JSON."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, name + "."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return out


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` (None, text, NaN and the like are left out)."""
    out = {}
    for key, value in values.items():
        v = finite_float(value)
        if v is not None:
            out[str(key)] = v
    return out


# ---------------------------------------------------------------- fan-out
class RunLoggers:
    """Every open :class:`~harness.types.RunLogger` of a run; with none it does nothing.

    A logger that fails while the run goes on (a tracking server gone away) is
    dropped with one warning; training is not stopped by its own monitoring.
    """

    def __init__(self, loggers: Sequence[Any] = ()) -> None:
        self.loggers = list(loggers)

    @property
    def active(self) -> bool:
        return bool(self.loggers)

    def _each(self, what: str, call) -> None:
        for lg in list(self.loggers):
            try:
                call(lg)
            except Exception as exc:  # noqa: BLE001 - monitoring must not end the training
                self.loggers.remove(lg)
                with contextlib.suppress(Exception):
                    lg.close("failed")
                _warn(f"warning: {type(lg).__name__}: {what} failed ({one_line(exc, 200)}); "
                      "the run goes on without it")

    # the RunLogger contract, fanned out
    def scalars(self, step: int, values: Mapping[str, Any]) -> None:
        numbers = _numbers(values)
        if numbers:
            self._each(f"scalars at step {step}", lambda lg: lg.scalars(int(step), numbers))

    def params(self, values: Mapping[str, Any]) -> None:
        flat = flatten_params(values)
        self._each("params", lambda lg: lg.params(flat))

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        self._each(f"artifact {path}", lambda lg: lg.artifact(path, folder))

    def close(self, status: str | None = None) -> None:
        """Close every logger; ``status`` None: ``failed`` while an exception is
        propagating (``killed`` for Ctrl-C), else ``finished``."""
        if status is None:
            exc = sys.exc_info()[1]
            status = "finished" if exc is None else "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
        loggers, self.loggers = self.loggers, []
        for lg in loggers:
            try:
                lg.close(status)
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's own outcome
                _warn(f"warning: closing {type(lg).__name__} failed ({one_line(exc, 200)})")

    # the tags every engine uses
    def train_step(self, step: int, *, loss: Any, lr: Any, img_per_s: Any, grad_norm: Any = None,
                   accuracy: Any = None) -> None:
        """One optimizer step's scalars (``step`` counts the steps done)."""
        if self.loggers:
            self.scalars(step, {"train/loss": loss, "train/lr": lr, "train/img_per_s": img_per_s,
                                "train/grad_norm": grad_norm, "train/accuracy": accuracy})

    def epoch_end(self, step: int, metrics: Mapping[str, Any] | None) -> None:
        """An epoch's evaluation metrics as ``eval/<name>`` at the global ``step``."""
        if self.loggers:
            self.scalars(step, {f"eval/{k}": v for k, v in dict(metrics or {}).items()})
            self._each("flush", lambda lg: getattr(lg, "flush", lambda: None)())


def _warn(message: str) -> None:
    """One line on the console, above a progress bar when one is showing."""
    try:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------- TensorBoard
class TensorBoardLogger:
    """Event files in ``logdir``: TensorBoard's own protos framed by its own ``RecordWriter``.

    The file is a plain local file (tensorboard's ``EventFileWriter`` opens it through
    ``tensorboard.compat.tf``, which imports TensorFlow whenever it is installed; this
    writer never does, so a torch run stays free of it).  Events are written as they
    come and reach the disk every ``flush_secs``, at each epoch's end and on close.

    :param purge_step: steps from this one on, logged by an earlier process
        into the same folder, are dropped by TensorBoard (a resumed run).
    """

    def __init__(self, logdir: str | Path, *, purge_step: int | None = None, flush_secs: float = 10.0) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = event_pb2, summary_pb2
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_EVENT_FILES)}"
        self.path = self.logdir / name
        self._records = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 - closed by close()
        self.flush_secs, self._flushed = float(flush_secs), time.monotonic()
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(event_pb2.Event(wall_time=time.time(), step=int(purge_step), session_log=start))
        self.flush()

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        if time.monotonic() - self._flushed >= self.flush_secs:
            self.flush()

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        value = [self._summary.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()]
        summary = self._summary.Summary(value=value)
        self._write(self._event.Event(wall_time=time.time(), step=int(step), summary=summary))

    def params(self, values: Mapping[str, str]) -> None:
        """The parameters as a Markdown table in TensorBoard's *Text* tab (tag ``params``)."""
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

        rows = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in sorted(values.items()))
        text = f"| parameter | value |\n|---|---|\n{rows}"
        meta = self._summary.SummaryMetadata(
            plugin_data=self._summary.SummaryMetadata.PluginData(plugin_name="text"))
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[text.encode("utf-8")],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))
        summary = self._summary.Summary(value=[self._summary.Summary.Value(tag="params", metadata=meta,
                                                                           tensor=tensor)])
        self._write(self._event.Event(wall_time=time.time(), step=0, summary=summary))

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        """TensorBoard keeps no files: the run folder already holds them."""

    def flush(self) -> None:
        self._records.flush()
        self._flushed = time.monotonic()

    def close(self, status: str = "finished") -> None:
        if not self._records.closed:
            self._records.flush()
            self._records.close()


# ------------------------------------------------------------------ MLflow
def tracking_uri(reports_dir: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else a file store in ``<reports>/mlruns``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    return env or (Path(reports_dir) / "mlruns").resolve().as_uri()


def _allow_file_store(uri: str) -> None:
    """MLflow 3 keeps its file store in maintenance mode and refuses to open one unless
    ``MLFLOW_ALLOW_FILE_STORE`` is set; a file store is what ``--log mlflow`` uses by
    default (and what a ``file:`` URI or a path asks for), so it is allowed here unless
    the environment already says otherwise."""
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def _reports_of(run_folder: Path) -> Path:
    """The reports folder of ``reports/runs/<run-id>``; a folder elsewhere keeps its own store."""
    run_folder = Path(run_folder)
    return run_folder.parent.parent if run_folder.parent.name == "runs" else run_folder


class MLflowLogger:
    """One MLflow run per run folder, through :class:`mlflow.tracking.MlflowClient`.

    The run named in ``<run folder>/mlflow.json`` is continued when it lives in the
    same tracking store; otherwise a run is created (named after the folder, tagged
    with its path) and the file written.

    :param flush_every: metric values buffered before they are sent in one batch
        (also sent after ``flush_secs`` and at each epoch's end).
    """

    def __init__(self, run_folder: str | Path, *, uri: str | None = None, flush_every: int = 200,
                 flush_secs: float = 5.0) -> None:
        from mlflow.tracking import MlflowClient

        self.folder = Path(run_folder)
        self.uri = uri or tracking_uri(_reports_of(self.folder))
        _allow_file_store(self.uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.flush_every, self.flush_secs = int(flush_every), float(flush_secs)
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()
        try:
            self.run_id = self._open_run()
        except Exception as exc:  # noqa: BLE001 - any store error is a configuration problem here
            raise ConfigError(f"--log mlflow: cannot open an MLflow run in {self.uri} ({one_line(exc, 200)}); "
                              "check MLFLOW_TRACKING_URI or unset it for the file store under --reports") from exc

    @property
    def marker(self) -> Path:
        return self.folder / MLFLOW_MARKER

    def read_marker(self) -> dict[str, Any]:
        return _read_marker(self.folder, self.uri)

    def write_marker(self, **extra: Any) -> None:
        data = {"tracking_uri": self.uri, "run_id": self.run_id, **{k: v for k, v in self.read_marker().items()
                                                                     if k not in ("tracking_uri", "run_id")},
                **extra}
        with atomic_output(self.marker, "w") as fh:
            fh.write(json.dumps(data, indent=1))

    def _experiment_id(self) -> str:
        return _experiment_id(self.client)

    def _open_run(self) -> str:
        known = self.read_marker().get("run_id")
        if known:
            try:
                run = self.client.get_run(known)
            except Exception:  # noqa: BLE001 - gone from the store: start a new one
                run = None
            if run is not None and run.info.lifecycle_stage == "active":
                self.client.update_run(known, status="RUNNING")
                return known
        tags = {"facebench.run_id": self.folder.name, "facebench.run_dir": str(self.folder.resolve())}
        run = self.client.create_run(self._experiment_id(), run_name=self.folder.name, tags=tags)
        self.run_id = run.info.run_id
        self.write_marker()
        return self.run_id

    # the RunLogger contract
    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending += [Metric(_key(k), float(v), now, int(step)) for k, v in values.items()]
        if len(self._pending) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_secs:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        for i in range(0, len(pending), 1000):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(self.run_id, metrics=pending[i:i + 1000])

    def params(self, values: Mapping[str, str]) -> None:
        """Log the parameters this run does not have yet (MLflow params cannot change)."""
        from mlflow.entities import Param

        have = self.client.get_run(self.run_id).data.params
        limit = _param_limit()
        new = [Param(_key(k), _clip(v, limit)) for k, v in sorted(values.items()) if _key(k) not in have]
        for i in range(0, len(new), 100):  # at most 100 params a batch
            self.client.log_batch(self.run_id, params=new[i:i + 100])

    def artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def close(self, status: str = "finished") -> None:
        self.flush()
        self.client.set_terminated(self.run_id, status=_MLFLOW_STATUS.get(status, "FAILED"))


def experiment_name() -> str:
    """``MLFLOW_EXPERIMENT_NAME`` when set, else :data:`DEFAULT_EXPERIMENT`."""
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", "").strip() or DEFAULT_EXPERIMENT


def _experiment_id(client: Any) -> str:
    """The id of the experiment runs go to (:func:`experiment_name`), created when missing."""
    name = experiment_name()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created meanwhile by a parallel run
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _read_marker(folder: Path, uri: str) -> dict[str, Any]:
    """``mlflow.json`` of a run folder when it names a run in the store at ``uri``, else {}."""
    try:
        data = json.loads((Path(folder) / MLFLOW_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("tracking_uri") == uri else {}


def _key(name: str) -> str:
    return _KEY_BAD.sub("_", str(name))[:250]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _param_limit() -> int:
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        return int(MAX_PARAM_VAL_LENGTH)
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - older MLflow
        return 500


# ------------------------------------------------------------------ opening
def open_training_loggers(settings: Any, workdir: str | Path, *, params: Mapping[str, Any] | None = None,
                          resumed_from: int | None = None, main: bool = True) -> RunLoggers:
    """The loggers of one training run (see the module docs), with its parameters logged.

    :param settings: the run's :class:`harness.config.TrainSettings` (``settings.log``
        selects the loggers; every setting is logged as ``training.<name>``).
    :param workdir: the run folder.
    :param params: more parameters (engine, backbone, seed, …).
    :param resumed_from: the step a resumed run continues from (None: a fresh start).
    :param main: False on ranks other than 0: nothing is opened there.
    :raises ConfigError: a logger asked for by name is not installed, or MLflow's store cannot be opened.
    """
    if not main:
        return RunLoggers()
    names = resolve(getattr(settings, "log", ()) or ())
    if not names:
        return RunLoggers()
    workdir = Path(workdir)
    opened: list[Any] = []
    try:
        if "tensorboard" in names:
            opened.append(TensorBoardLogger(workdir / TENSORBOARD_DIR,
                                            purge_step=None if resumed_from is None else int(resumed_from) + 1))
        if "mlflow" in names:
            opened.append(MLflowLogger(workdir))
    except BaseException:
        RunLoggers(opened).close("failed")
        raise
    loggers = RunLoggers(opened)
    training = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else {}
    loggers.params({**({"training": training} if training else {}), **dict(params or {})})
    return loggers


# ------------------------------------------------------- after a run: MLflow
def record_run(run_folder: str | Path) -> bool:
    """Record a run's report in MLflow: its config as params, its metrics, ``results.json``
    and the rendered run page as artifacts (under ``report/``), and its status.

    Continues the MLflow run its training opened (``mlflow.json``), else opens one.
    A finished run already recorded is left alone.

    :returns: True when something was recorded.
    """
    folder = Path(run_folder)
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    status = str(results.get("status", "running"))
    if status == "finished" and _read_marker(folder, tracking_uri(_reports_of(folder))).get("recorded") == status:
        return False
    lg = MLflowLogger(folder)
    config = (results.get("provenance") or {}).get("config") or {}
    lg.params(flatten_params({"task": results.get("task"), **config}))
    step = int(((results.get("sections") or {}).get("training") or {}).get("steps") or 0)
    metrics = {m.get("name"): m.get("value") for m in results.get("metrics") or [] if isinstance(m, Mapping)}
    lg.scalars(step, _numbers({k: v for k, v in metrics.items() if k}))
    for name in ("results.json", "index.html"):
        if (folder / name).is_file():
            lg.artifact(folder / name, "report")
    lg.write_marker(recorded=status)
    lg.close(status)
    return True


def job_tracking(reports_dir: str | Path, selection: Sequence[str]) -> dict[str, str]:
    """Before the cells of a grid go out as separate jobs (``--launcher slurm|submitit-local``):
    the environment that makes every job record into the submitting process's MLflow store and
    experiment (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``), with the experiment created
    here once — jobs starting together would otherwise each create one of the same name in a file
    store.  ``{}`` when the selection has no ``mlflow``.

    :raises ConfigError: the store cannot be opened (before anything is submitted).
    """
    if "mlflow" not in resolve(selection):
        return {}
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(reports_dir)
    _allow_file_store(uri)
    try:
        _experiment_id(MlflowClient(tracking_uri=uri))
    except Exception as exc:  # noqa: BLE001 - any store error is a configuration problem here
        raise ConfigError(f"--log mlflow: cannot open the MLflow experiment {experiment_name()!r} in {uri} "
                          f"({one_line(exc, 200)}); check MLFLOW_TRACKING_URI or unset it for the file store "
                          "under --reports") from exc
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": experiment_name()}
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE"):
        env["MLFLOW_ALLOW_FILE_STORE"] = os.environ["MLFLOW_ALLOW_FILE_STORE"]
    return env


def record_grid(reports_dir: str | Path, config_hashes: Sequence[str], selection: Sequence[str]) -> list[str]:
    """After a grid: record the newest run folder of each config in MLflow (when the
    selection includes ``mlflow``).  A failure is reported as a warning line, never
    raised, so it cannot hide the grid's own outcome.

    :returns: the run ids recorded.
    """
    try:
        if "mlflow" not in resolve(selection):
            return []
    except ConfigError as exc:
        _warn(f"warning: {exc}")
        return []
    from harness.results import RunStore

    newest: dict[str, Any] = {}
    for run in RunStore(reports_dir).runs():  # newest first
        newest.setdefault(run.config_hash, run)
    done = []
    for h in dict.fromkeys(config_hashes):
        run = newest.get(h)
        if run is None:
            continue
        try:
            if record_run(run.path):
                done.append(run.run_id)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            _warn(f"warning: could not record {run.run_id} in MLflow: {one_line(exc, 300)}")
    return done
