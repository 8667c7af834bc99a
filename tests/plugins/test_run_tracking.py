"""Watching a run (issue 19, item 5): both engines write TensorBoard event files under the
run folder, and ``harness run --log mlflow`` records an MLflow run — each read back with
the tool's own reader (TensorBoard's EventAccumulator, MLflow's file store through
``mlflow.search_runs``), never a mock.

The training runs are tiny (a few steps on synthetic images, one CPU thread), so each
test takes seconds.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from harness.config import RunConfig, TrainSettings
from harness.errors import ConfigError
from harness.run_loggers import (
    LOGGERS, MLflowLogger, RunLoggers, TensorBoardLogger, normalise_selection, record_run, require, resolve,
)
from harness.types import RunLogger

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'facebench[track]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TAGS = ("train/loss", "train/lr", "train/img_per_s", "train/grad_norm")
#: resnet20 at 32 x 32 on synthetic faces: 4 identities x 4 images, batch 8 -> 2 steps an epoch
TINY = ["--backbone", "resnet20", "--loss", "softmax", "-o", "resnet20.input_size=32,32",
        "-o", "resnet20.embedding_size=16", "-o", "synthetic.size=32", "-o", "synthetic.train_identities=4",
        "-o", "synthetic.test_identities=6", "-o", "synthetic.images_per_identity=4",
        "-o", "synthetic.pairs_per_fold=5", "--train", "synthetic", "--eval", "synthetic",
        "--epochs", "2", "--batch-size", "8", "--lr", "0.05", "--device", "cpu"]


def _events(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalars(acc: EventAccumulator, tag: str) -> tuple[list[int], list[float]]:
    events = acc.Scalars(tag)
    return [e.step for e in events], [e.value for e in events]


def _float32(values) -> list[float]:
    """What an event file holds: simple_value is a 32-bit float."""
    return [float(np.float32(v)) for v in values]


# --------------------------------------------------------------- selection
@pytest.mark.parametrize("given,expected", [
    ((), ()), ("mlflow", ("mlflow",)), (("tensorboard,mlflow",), ("tensorboard", "mlflow")),
    (("MLflow", "tensorboard", "mlflow"), ("mlflow", "tensorboard")), ("none", ("none",)),
])
def test_log_selection_is_normalised(given, expected):
    assert normalise_selection(given) == expected
    assert TrainSettings(log=given).log == expected


@pytest.mark.parametrize("given,message", [
    ("mlflwo", "unknown logger 'mlflwo' — did you mean 'mlflow'"),
    ("none,mlflow", "'none' switches every logger off"),
    ((3,), "expected logger names"),
])
def test_a_bad_log_selection_is_one_config_error(given, message):
    with pytest.raises(ConfigError, match=message) as info:
        normalise_selection(given)
    assert "\n" not in str(info.value)
    if isinstance(given, str):
        with pytest.raises(ConfigError, match=message):
            TrainSettings(log=given)


def test_the_log_selection_is_not_part_of_the_run_and_travels_to_workers():
    import yaml

    base = dict(backbones=("resnet20",), losses=("softmax",), train=("synthetic",))
    plain = RunConfig(**base).expand()[0]
    logged = RunConfig(**base, training={"log": "tensorboard,mlflow"}).expand()[0]
    assert logged.training.log == ("tensorboard", "mlflow")
    assert logged.config_hash() == plain.config_hash() and "log" not in logged.to_dict()["training"]
    cfg = RunConfig(**base, training={"log": ("mlflow",)})
    back = RunConfig.from_mapping(yaml.safe_load(yaml.safe_dump(cfg.to_mapping())))  # what torchrun workers read
    assert back.training.log == ("mlflow",)


def test_a_missing_package_is_one_config_error_naming_the_extra(monkeypatch, tmp_path, capsys):
    from harness.cli import main

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if it were not installed
    with pytest.raises(ConfigError, match=r"pip install 'facebench\[track\]'.*mlflow-skinny"):
        require(("mlflow",))
    assert main(["run", *TINY, "--log", "mlflow", "--reports", str(tmp_path)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: --log mlflow: the mlflow package is not installed") and "facebench[track]" in last
    assert not (tmp_path / "runs").exists()  # refused before any work
    assert main(["run", *TINY, "--log", "tensorbord", "--reports", str(tmp_path)]) == 2
    assert "did you mean 'tensorboard'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    assert resolve(()) == ()  # the default switches itself off quietly
    with pytest.raises(ConfigError, match="--log tensorboard: the tensorboard package is not installed"):
        resolve(("tensorboard",))


def test_the_default_opens_tensorboard_and_none_opens_nothing():
    _mlflow()
    assert resolve(()) == ("tensorboard",)
    assert resolve(("none",)) == ()
    assert resolve(("mlflow",)) == tuple(LOGGERS)


# ------------------------------------------------------------- TensorBoard
def test_tensorboard_writer_reads_back_and_a_resume_drops_the_lost_steps(tmp_path):
    first = TensorBoardLogger(tmp_path)
    assert isinstance(first, RunLogger)
    for step in range(1, 7):
        first.scalars(step, {"train/loss": 10.0 - step})
    first.params({"training.lr": "0.1", "engine": "torch"})
    first.close()
    # the process died after a checkpoint at step 4; the resumed one logs 5.. again
    second = TensorBoardLogger(tmp_path, purge_step=5)
    for step in range(5, 9):
        second.scalars(step, {"train/loss": 100.0 + step})
    second.close()
    steps, values = _scalars(_events(tmp_path), "train/loss")
    assert steps == list(range(1, 9))
    assert values == [9.0, 8.0, 7.0, 6.0, 105.0, 106.0, 107.0, 108.0]
    assert "params" in _events(tmp_path).Tags()["tensors"]


def test_tensorboard_events_are_written_without_any_framework(tmp_path):
    """One writer for both engines: a fresh interpreter writes events with neither torch nor TensorFlow."""
    import subprocess

    code = ("import sys\nfrom harness.run_loggers import TensorBoardLogger\n"
            f"lg = TensorBoardLogger({str(tmp_path)!r})\nlg.scalars(1, {{'train/loss': 2.5}})\nlg.close()\n"
            "print([m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert _scalars(_events(tmp_path), "train/loss") == ([1], [2.5])


def test_fan_out_keeps_finite_numbers_and_drops_a_failing_logger(capsys):
    class Broken:
        def scalars(self, step, values):
            raise OSError("server gone")

        def params(self, values): ...

        def artifact(self, path, folder=None): ...

        def close(self, status="finished"): ...

    class Recorder(Broken):
        def __init__(self):
            self.seen, self.status = [], None

        def scalars(self, step, values):
            self.seen.append((step, dict(values)))

        def close(self, status="finished"):
            self.status = status

    rec = Recorder()
    loggers = RunLoggers([Broken(), rec])
    loggers.train_step(3, loss=np.float32(0.5), lr=0.1, img_per_s=float("nan"), grad_norm=None, accuracy=1)
    loggers.epoch_end(3, {"val_accuracy": 0.75, "note": "text"})
    assert rec.seen == [(3, {"train/loss": 0.5, "train/lr": 0.1, "train/accuracy": 1.0}),
                        (3, {"eval/val_accuracy": 0.75})]
    assert len(loggers.loggers) == 1 and "server gone" in capsys.readouterr().err
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        loggers.close()
    assert rec.status == "killed"


# ------------------------------------------------------------- torch engine
@pytest.fixture
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def test_torch_training_leaves_tensorboard_events_equal_to_its_history(tmp_path, one_thread):
    from facebench_plugins.engines.torch_engine import build
    from tests.plugins.engines._engine_fixtures import SoftmaxLoss, TinyNet, random_imageset, tiny_spec

    engine = build(None)
    engine.seed_everything(0)
    settings = TrainSettings(epochs=2, batch_size=8, lr=0.05, grad_clip=None, log=("tensorboard",))
    out = engine.train(TinyNet(), SoftmaxLoss(num_classes=4), random_imageset(n=32, classes=4),
                       backbone_spec=tiny_spec(), settings=settings, workdir=tmp_path, seed=0, progress=False,
                       on_epoch_end=lambda epoch, m: {"val_accuracy": 0.25 * epoch})
    acc = _events(tmp_path / "tensorboard")
    steps, loss = _scalars(acc, "train/loss")
    assert steps == out.history["step"] == list(range(1, 9))
    assert loss == _float32(out.history["loss"])
    assert _scalars(acc, "train/lr")[1] == _float32(out.history["lr"])
    assert _scalars(acc, "train/accuracy")[1] == _float32(out.history["accuracy"])
    norms = _scalars(acc, "train/grad_norm")[1]
    assert len(norms) == 8 and all(math.isfinite(n) and n > 0 for n in norms)
    assert _scalars(acc, "eval/val_accuracy") == ([4, 8], [0.25, 0.5])
    assert set(TAGS) <= set(acc.Tags()["scalars"]) and "params" in acc.Tags()["tensors"]


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_the_logged_gradient_norm_is_the_norm_before_clipping(one_thread, clip):
    """Reference: the 2-norm of every parameter's gradient from a plain backward of the same batch."""
    import copy

    torch = one_thread
    from facebench_plugins.engines._trainer import Precision, Ranks, StepFunction
    from tests.plugins.engines._engine_fixtures import SoftmaxLoss

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 16))
    loss_fn = SoftmaxLoss(embedding_size=16, num_classes=4)
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1])
    ref_model, ref_loss = copy.deepcopy(model), copy.deepcopy(loss_fn)
    ref_loss(ref_model(x), y).backward()
    grads = [p.grad for p in (*ref_model.parameters(), *ref_loss.parameters())]
    expected = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))

    params = [*model.parameters(), *loss_fn.parameters()]
    opt = torch.optim.SGD(params, lr=0.0)
    precision = Precision(torch.device("cpu"), None, False)
    step = StepFunction(model, loss_fn, opt, precision.scaler(), precision, TrainSettings(grad_clip=clip), Ranks())
    step.measure_grad_norm = clip is None
    step(iter([(x, y)]), 0.0, 0)
    assert float(step.grad_norm) == pytest.approx(expected, rel=1e-5)
    if clip is not None:  # the update used the clipped gradient
        total = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params))
        assert total == pytest.approx(clip, rel=1e-3)


# ---------------------------------------------------------------- tf engine
def test_tf_training_leaves_tensorboard_events_equal_to_its_history(tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install 'facebench[tf]')")
    pytest.importorskip("torch")
    import dataclasses

    from facebench_plugins.engines.tf_engine import TFEngine
    from facebench_plugins.engines import TFEngineOptions
    from harness.registry import get_registry
    from tests.plugins.engines._engine_fixtures import random_imageset

    reg = get_registry()
    engine = TFEngine(TFEngineOptions(threads=1))
    engine.seed_everything(0)
    opts = {"input_size": 32, "embedding_size": 16}
    bspec = reg.get("backbone", "resnet20")
    model = engine.adapt("backbone", "resnet20", bspec.make_options(opts), reg.build("backbone", "resnet20", opts))
    loss = engine.adapt("loss", "softmax", reg.get("loss", "softmax").make_options({}),
                        reg.build("loss", "softmax", embedding_size=16, num_classes=4))
    spec = dataclasses.replace(bspec, input_size=(32, 32), embedding_size=16)
    settings = TrainSettings(epochs=2, batch_size=8, lr=0.05, log="tensorboard")
    out = engine.train(model, loss, random_imageset(n=16, classes=4), backbone_spec=spec, settings=settings,
                       workdir=tmp_path, seed=0, progress=False, on_epoch_end=lambda epoch, m: {"val_accuracy": 0.5})
    acc = _events(tmp_path / "tensorboard")
    steps, values = _scalars(acc, "train/loss")
    assert steps == out.history["step"] == [1, 2, 3, 4]
    assert values == _float32(out.history["loss"])
    assert _scalars(acc, "train/lr")[1] == _float32(out.history["lr"])
    assert all(math.isfinite(n) and n > 0 for n in _scalars(acc, "train/grad_norm")[1])
    assert _scalars(acc, "eval/val_accuracy") == ([2, 4], [0.5, 0.5])


# ------------------------------------------------------------------- MLflow
def _mlflow():
    return pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'facebench[track]')")


@pytest.fixture
def fresh_env(monkeypatch):
    """No MLflow settings in the environment; whatever a test sets there is undone after it
    (facebench itself opts in to MLflow 3's file store, MLFLOW_ALLOW_FILE_STORE)."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.setenv(name, "")  # records the value to restore ...
        monkeypatch.delenv(name)  # ... then leaves the variable unset
    return monkeypatch


def test_harness_run_log_mlflow_leaves_a_run_mlflow_finds(tmp_path, fresh_env, one_thread):
    from harness.cli import main

    mlflow, monkeypatch = _mlflow(), fresh_env
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    monkeypatch.setenv("FACEBENCH_COST", "off")
    reports = tmp_path / "reports"
    assert main(["run", *TINY, "--log", "tensorboard,mlflow", "--reports", str(reports)]) == 0
    (run_dir,) = (reports / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    mlflow.set_tracking_uri((reports / "mlruns").resolve().as_uri())
    (run,) = mlflow.search_runs(experiment_names=["facebench"], output_format="list")
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    params, metrics = run.data.params, run.data.metrics
    assert params["training.lr"] == "0.05" and params["components.backbone"] == "resnet20"
    assert params["engine"] == "torch" and params["task"] == "recognition"
    accuracy = next(m["value"] for m in results["metrics"] if m["name"] == "accuracy")
    assert metrics["accuracy"] == pytest.approx(accuracy)
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "train/loss")
    logged = [h.value for h in sorted(history, key=lambda h: h.step)]
    assert logged == pytest.approx(results["curves"]["training"]["loss"], rel=1e-12)
    assert {"eval/val_accuracy", "train/lr", "train/grad_norm"} <= set(metrics)
    files = {f.path for f in mlflow.tracking.MlflowClient().list_artifacts(run.info.run_id, "report")}
    assert files == {"report/results.json", "report/index.html"}
    steps, values = _scalars(_events(run_dir / "tensorboard"), "train/loss")  # TensorBoard beside it
    assert steps == [1, 2, 3, 4] and values == _float32(results["curves"]["training"]["loss"])


def test_record_run_honours_mlflow_tracking_uri_and_records_once(tmp_path, fresh_env):
    from harness.results import RunStore

    mlflow, monkeypatch = _mlflow(), fresh_env
    store_uri = (tmp_path / "elsewhere").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "faces")
    run_dir = RunStore(tmp_path / "reports").create("dlib_resnet", "abc123")
    run_dir.write_results({"task": "recognition", "status": "finished", "provenance": {"config": {
        "components": {"recognizer": "dlib_resnet"}, "seed": 0}},
        "metrics": [{"name": "accuracy", "value": 0.9938, "direction": "higher"},
                    {"name": "eer", "value": None, "direction": "lower"}]})
    assert record_run(run_dir.path) is True
    assert record_run(run_dir.path) is False  # a finished run is recorded once
    assert not (tmp_path / "reports" / "mlruns").exists()
    mlflow.set_tracking_uri(store_uri)
    (run,) = mlflow.search_runs(experiment_names=["faces"], output_format="list")
    assert run.data.metrics == {"accuracy": pytest.approx(0.9938)}
    assert run.data.params["components.recognizer"] == "dlib_resnet" and run.info.status == "FINISHED"
    marker = json.loads((run_dir.path / "mlflow.json").read_text())
    assert marker["run_id"] == run.info.run_id and marker["tracking_uri"] == store_uri
    # a training run resumed in the same folder continues the same MLflow run
    assert MLflowLogger(run_dir.path).run_id == run.info.run_id


def test_job_tracking_pins_the_store_and_creates_the_experiment_once(tmp_path, fresh_env):
    """Before a grid's cells go out as jobs (--launcher slurm|submitit-local): the submitting
    process's store and experiment, the experiment made once; nothing without mlflow; a store
    that cannot be opened is one ConfigError before anything is submitted."""
    from harness.run_loggers import job_tracking

    mlflow, monkeypatch = _mlflow(), fresh_env
    assert job_tracking(tmp_path, ("tensorboard",)) == {} and job_tracking(tmp_path, ("none",)) == {}
    assert not (tmp_path / "mlruns").exists()
    env = job_tracking(tmp_path, ("mlflow",))
    uri = (tmp_path / "mlruns").resolve().as_uri()
    assert env["MLFLOW_TRACKING_URI"] == uri and env["MLFLOW_EXPERIMENT_NAME"] == "facebench"
    assert job_tracking(tmp_path, ("mlflow",)) == env  # found, not made again
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    assert [e.name for e in client.search_experiments()].count("facebench") == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "elsewhere").resolve().as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "sweeps")
    env = job_tracking(tmp_path / "reports", ("mlflow",))
    assert env["MLFLOW_TRACKING_URI"].endswith("/elsewhere") and env["MLFLOW_EXPERIMENT_NAME"] == "sweeps"
    assert mlflow.tracking.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).get_experiment_by_name("sweeps")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://tracking")
    with pytest.raises(ConfigError, match="cannot open the MLflow experiment 'sweeps' in nosuchscheme://") as info:
        job_tracking(tmp_path, ("mlflow",))
    assert "\n" not in str(info.value)
