"""The torch engine's training loop, schedule, optimizer groups, stops,
fine-tuning and embedding, on tiny models (CPU, seconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from _engine_fixtures import EMB, SoftmaxLoss, TinyNet, att_imageset, random_imageset, tiny_spec
from facebench_plugins.engines import TorchEngineOptions
from facebench_plugins.engines.torch_engine import LRSchedule, TorchEngine, build, param_groups
from harness.config import TrainSettings
from harness.errors import ConfigError, DataError
from harness.registry import Registry
from tests.conftest import need_data


@pytest.fixture
def engine() -> TorchEngine:
    eng = build(None)
    eng.seed_everything(0)
    return eng


def _train(engine, tmp_path, *, n=32, classes=4, seed=0, model=None, loss=None, init_arg=None,
           **settings):
    s = TrainSettings(**{"epochs": 1, "batch_size": 8, "lr": 0.05, "checkpoint_every": 100, **settings})
    model = model or TinyNet()
    loss = loss or SoftmaxLoss(num_classes=classes)
    return engine.train(model, loss, random_imageset(n=n, classes=classes), backbone_spec=tiny_spec(),
                        settings=s, workdir=tmp_path, seed=seed, init=init_arg, progress=False)


# ------------------------------------------------------------------ registry
def test_engine_is_registered_and_builds_through_the_registry():
    reg = Registry(load_entry_points=False, plugins=[__import__("facebench_plugins.engines").engines])
    spec = reg.get("engine", "torch")
    assert spec.framework == "torch" and spec.summary
    eng = reg.build("engine", "torch", {"pk_k": "8", "cpu_bf16": "false"})
    assert isinstance(eng, TorchEngine) and eng.options.pk_k == 8
    with pytest.raises(ConfigError, match="step_milestones"):
        reg.build("engine", "torch", {"step_milestones": "0.5,1.5"})


# ------------------------------------------------------------------ schedule
def test_warmup_then_cosine():
    s = LRSchedule("cosine", 0.1, total_steps=104, warmup_steps=4)
    assert [round(s.lr(i), 6) for i in range(4)] == [0.02, 0.04, 0.06, 0.08]
    assert s.lr(4) == pytest.approx(0.1)
    assert s.lr(54) == pytest.approx(0.05)  # half way through the cosine
    assert s.lr(4 + 25) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))
    assert s.lr(103) == pytest.approx(0.05 * (1 + math.cos(math.pi * 99 / 100)))
    lrs = [s.lr(i) for i in range(4, 104)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_warmup_then_step_and_constant():
    s = LRSchedule("step", 1.0, total_steps=110, warmup_steps=10, milestones=(0.5, 0.75), gamma=0.1)
    assert s.lr(0) == pytest.approx(1 / 11) and s.lr(9) == pytest.approx(10 / 11)
    assert s.lr(10) == s.lr(59) == 1.0
    assert s.lr(60) == pytest.approx(0.1) and s.lr(84) == pytest.approx(0.1)
    assert s.lr(85) == pytest.approx(0.01) and s.lr(109) == pytest.approx(0.01)
    c = LRSchedule("constant", 0.3, total_steps=10, warmup_steps=2)
    assert [c.lr(i) for i in range(4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])
    with pytest.raises(ConfigError):
        LRSchedule("linear", 0.1, 10)


@pytest.mark.parametrize("optimizer,scheduler", [("sgd", "cosine"), ("adamw", "step")])
def test_training_follows_the_schedule(engine, tmp_path, optimizer, scheduler):
    out = _train(engine, tmp_path, optimizer=optimizer, scheduler=scheduler, warmup_steps=2, lr=0.01)
    sched = LRSchedule(scheduler, 0.01, total_steps=4, warmup_steps=2)
    assert out.history["lr"] == pytest.approx([sched.lr(i) for i in range(4)])
    ck = torch.load(out.checkpoint, weights_only=True)
    state = ck["optimizer"]["state"]
    assert ("exp_avg" if optimizer == "adamw" else "momentum_buffer") in next(iter(state.values()))
    assert ck["scheduler"]["name"] == scheduler and ck["scheduler"]["last_step"] == 4


# ------------------------------------------------------------ weight decay
def test_weight_decay_skips_bn_and_bias_but_not_the_classifier():
    groups = param_groups({"model": TinyNet(), "loss": SoftmaxLoss()}, 5e-4)
    decay, no_decay = groups
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert set(decay["names"]) == {"model.conv1.weight", "model.conv2.weight", "model.fc.weight",
                                   "loss.weight"}
    assert set(no_decay["names"]) == {
        "model.bn1.weight", "model.bn1.bias", "model.act1.weight", "model.bn2.weight",
        "model.bn2.bias", "model.act2.weight", "model.fc.bias", "model.features.weight",
        "model.features.bias", "loss.bias",
    }
    assert sum(len(g["params"]) for g in groups) == len(list(TinyNet().parameters())) + 2


# ---------------------------------------------------------- grad clipping
def test_grad_clip_bounds_the_update(engine, tmp_path):
    """One SGD step at lr 1 without decay moves the parameters by exactly the
    (clipped) gradient, so the update's norm equals grad_clip."""
    def step(clip, where):
        engine.seed_everything(1)
        model, loss = TinyNet(dropout=0.0), SoftmaxLoss(num_classes=4)
        before = torch.cat([p.detach().flatten().clone() for p in [*model.parameters(), *loss.parameters()]])
        _train(engine, where, model=model, loss=loss, max_steps=1, lr=1.0, weight_decay=0.0,
               scheduler="constant", grad_clip=clip)
        after = torch.cat([p.detach().flatten().cpu() for p in [*model.parameters(), *loss.parameters()]])
        return float((after - before).norm())

    assert step(0.01, tmp_path / "a") == pytest.approx(0.01, rel=1e-4)
    assert step(None, tmp_path / "b") > 0.05


# --------------------------------------------------------------- stopping
def test_max_steps_stops_and_checkpoints(engine, tmp_path):
    out = _train(engine, tmp_path, epochs=5, max_steps=3)
    assert out.stopped_by == "max_steps" and out.steps == 3 and out.epochs_done == 0
    assert out.history["step"] == [1, 2, 3]
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (ck["step"], ck["epoch"], ck["position"]) == (3, 0, 3)
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_time_budget_stops_after_the_current_step(engine, tmp_path, capsys):
    out = _train(engine, tmp_path, epochs=1000, time_budget=0.05)
    assert out.stopped_by == "time_budget"
    assert out.steps >= 1 and out.steps < 4000  # stopped early, after at least one step
    ck = torch.load(out.checkpoint, weights_only=True)
    assert ck["step"] == out.steps and len(ck["history"]["loss"]) == out.steps
    # the console says so, in one line, not only the report
    err = capsys.readouterr().err
    line = f"training stopped by the time budget of 0.05 s at step {out.steps} of 4000"
    assert err.count(line) == 1 and err.count("\n") == 1


def test_no_time_budget_line_when_training_ends_by_itself(engine, tmp_path, capsys):
    out = _train(engine, tmp_path, max_steps=2)
    assert out.stopped_by == "max_steps" and "time budget" not in capsys.readouterr().err


def test_epochs_stop_runs_on_epoch_end_and_records_metrics(engine, tmp_path):
    calls = []

    def on_epoch_end(epoch, model):
        calls.append((epoch, model.training))
        model.eval()
        return {"val_accuracy": np.float32(0.5 + epoch / 10)}

    s = TrainSettings(epochs=2, batch_size=8, lr=0.05, checkpoint_every=3)
    out = engine.train(TinyNet(), SoftmaxLoss(num_classes=4), random_imageset(n=32, classes=4),
                       backbone_spec=tiny_spec(), settings=s, workdir=tmp_path, seed=0,
                       on_epoch_end=on_epoch_end, progress=True)
    assert out.stopped_by == "epochs" and out.steps == 8 and out.epochs_done == 2
    assert calls == [(1, True), (2, True)]  # the model is back in training after each call
    assert out.history["eval"] == [{"epoch": 1, "step": 4, "val_accuracy": pytest.approx(0.6)},
                                   {"epoch": 2, "step": 8, "val_accuracy": pytest.approx(0.7)}]
    assert out.history["epoch"] == [1] * 4 + [2] * 4
    assert all(0 <= a <= 1 for a in out.history["accuracy"])
    assert all(v > 0 for v in out.history["img_per_s"])
    assert not out.model.training and not out.loss_fn.training
    assert out.device == str(engine.resolve_device("auto")) and out.resumed_from_step is None
    assert out.wall_s > 0


def test_resume_of_a_finished_run_trains_nothing_and_changed_runs_are_refused(engine, tmp_path):
    first = _train(engine, tmp_path, epochs=1)
    again = _train(engine, tmp_path, epochs=1)
    assert again.resumed_from_step == first.steps == again.steps
    assert again.history["loss"] == first.history["loss"]
    for k, v in first.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[k], v)
    with pytest.raises(ConfigError, match="batch_size 8 -> 4"):
        _train(engine, tmp_path, batch_size=4)
    fresh = engine.train(TinyNet(), SoftmaxLoss(num_classes=4), random_imageset(n=32, classes=4),
                         backbone_spec=tiny_spec(), settings=TrainSettings(batch_size=4, lr=0.05),
                         workdir=tmp_path, seed=0, resume=False, progress=False)
    assert fresh.resumed_from_step is None and fresh.steps == 8


def test_workers_give_the_same_result_as_the_main_process(tmp_path):
    results = []
    for workers in (0, 1):
        eng = build(None)
        eng.seed_everything(3)
        out = _train(eng, tmp_path / str(workers), max_steps=3, workers=workers)
        results.append(out)
    assert results[0].history["loss"] == pytest.approx(results[1].history["loss"], abs=1e-6)


def test_pk_sampler_trains(engine, tmp_path):
    out = engine.train(TinyNet(), SoftmaxLoss(num_classes=8), random_imageset(n=64, classes=8),
                       backbone_spec=tiny_spec(),
                       settings=TrainSettings(epochs=1, batch_size=8, lr=0.05), workdir=tmp_path,
                       seed=0, sampler="pk", progress=False)
    assert out.steps == 8
    ck = torch.load(out.checkpoint, weights_only=True)
    assert ck["plan"]["sampler"] == "pk" and ck["plan"]["pk_k"] == 4


def test_bad_inputs_are_clear_errors(engine, tmp_path):
    with pytest.raises(DataError, match="fewer than one batch"):
        _train(engine, tmp_path, n=4, batch_size=8)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            _train(engine, tmp_path, device="cuda")
    with pytest.raises(ConfigError, match="torchrun"):
        engine.train(TinyNet(), SoftmaxLoss(), random_imageset(), backbone_spec=tiny_spec(),
                     settings=TrainSettings(), workdir=tmp_path, seed=0, world=2)


def test_cpu_bf16_autocast_trains(tmp_path):
    eng = build(TorchEngineOptions(cpu_bf16=True))
    eng.seed_everything(0)
    out = _train(eng, tmp_path, max_steps=2)
    assert out.steps == 2 and all(math.isfinite(v) for v in out.history["loss"])
    assert next(out.model.parameters()).dtype == torch.float32


# ---------------------------------------------------------------- init
def test_init_fine_tunes_from_backbone_weights(engine, tmp_path):
    source = TinyNet()
    weights = engine.save_model(source, tmp_path / "pre.pt")
    target = TinyNet()
    out = _train(engine, tmp_path / "run", model=target, max_steps=1, lr=1e-9, init_arg=str(weights))
    assert out.init["missing"] == [] and out.init["unexpected"] == [] and out.init["matched"] > 0
    torch.testing.assert_close(out.model.conv1.weight.cpu(), source.conv1.weight, atol=1e-6, rtol=0)
    # a facebench training checkpoint works too (its backbone part is used)
    out2 = _train(engine, tmp_path / "run2", model=TinyNet(), max_steps=1, lr=1e-9,
                  init_arg=str(out.checkpoint))
    torch.testing.assert_close(out2.model.fc.weight, out.model.fc.weight, atol=1e-6, rtol=0)
    # TrainSettings.init is honoured as well
    out3 = _train(engine, tmp_path / "run3", model=TinyNet(), max_steps=1, lr=1e-9, init=str(weights))
    torch.testing.assert_close(out3.model.conv2.weight.cpu(), source.conv2.weight, atol=1e-6, rtol=0)


def test_init_reports_missing_and_unexpected_keys(engine, tmp_path, caplog):
    state = TinyNet().state_dict()
    state.pop("fc.bias")
    state["head.extra"] = torch.zeros(3)
    torch.save({"net_state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "odd.ckpt")
    with caplog.at_level("WARNING"):
        out = _train(engine, tmp_path / "run", max_steps=1, init_arg=str(tmp_path / "odd.ckpt"))
    assert out.init["missing"] == ["fc.bias"] and out.init["unexpected"] == ["head.extra"]
    assert "fc.bias" in caplog.text and "head.extra" in caplog.text


def test_init_shape_mismatch_is_a_clear_error(engine, tmp_path):
    engine.save_model(TinyNet(emb=8), tmp_path / "small.pt")
    with pytest.raises(ConfigError) as err:
        _train(engine, tmp_path / "run", max_steps=1, init_arg=str(tmp_path / "small.pt"))
    msg = str(err.value)
    assert "fc.weight: (8, 256) vs (16, 256)" in msg and "another shape" in msg
    with pytest.raises(DataError, match="does not exist"):
        _train(engine, tmp_path / "run", max_steps=1, init=str(tmp_path / "nope.pt"))


def test_check_settings_finds_bad_devices_and_init_files_before_training(engine, tmp_path):
    engine.check_settings(TrainSettings(device="cpu"))
    with pytest.raises(ConfigError, match="is not a torch device"):
        engine.check_settings(TrainSettings(device="gpu"))
    with pytest.raises(ConfigError, match="holds no data"):
        engine.check_settings(TrainSettings(device="meta"))
    with pytest.raises(ConfigError, match="CUDA device"):
        engine.check_settings(TrainSettings(device="cuda:99"))
    with pytest.raises(DataError, match="does not exist"):
        engine.check_settings(TrainSettings(init=str(tmp_path / "nope.pt")))
    # init is only read when the run trains
    engine.check_settings(TrainSettings(init=str(tmp_path / "nope.pt")), training=False)
    good = engine.save_model(TinyNet(), tmp_path / "good.pt")
    engine.check_settings(TrainSettings(init=str(good)))


@pytest.mark.parametrize("content", [b"not a checkpoint\n", b"checkpoint\n", b"", b"PK\x03\x04 torn zip"])
def test_an_unreadable_checkpoint_never_suggests_unsafe_loading(engine, tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        engine.check_settings(TrainSettings(init=str(path)))
    msg = str(err.value)
    assert msg.startswith(f"checkpoint {path} is not a PyTorch weights file") and "\n" not in msg
    assert "weights_only" not in msg.replace("weights_only=True", "") and "False" not in msg


def test_save_and_load_model_roundtrip(engine, tmp_path):
    a, b = TinyNet(), TinyNet()
    engine.save_model(a, tmp_path / "a.pt")
    engine.load_model(b, tmp_path / "a.pt")
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)
    with pytest.raises(ConfigError, match="another shape"):
        engine.load_model(TinyNet(emb=4), tmp_path / "a.pt")


# ---------------------------------------------------------------- embed
def test_embed_shapes_and_flip_modes(engine):
    model = TinyNet().eval()
    spec = tiny_spec()
    ds = random_imageset(n=10, size=40)
    images = [ds.load(i) for i in range(10)]
    plain = engine.embed(model, images, backbone_spec=spec, batch_size=4)
    assert plain.shape == (10, EMB) and plain.dtype == np.float32
    concat = engine.embed(model, images, backbone_spec=spec, batch_size=3, flip="concat")
    assert concat.shape == (10, 2 * EMB)
    np.testing.assert_allclose(concat[:, :EMB], plain, atol=1e-5)
    flipped = engine.embed(model, [im[:, ::-1] for im in images], backbone_spec=spec)
    np.testing.assert_allclose(concat[:, EMB:], flipped, atol=1e-5)
    summed = engine.embed(model, images, backbone_spec=spec, flip="sum")
    assert summed.shape == (10, EMB)
    np.testing.assert_allclose(summed, plain + flipped, atol=1e-4)
    # an ImageSet, and a callable with n, give the same
    np.testing.assert_allclose(engine.embed(model, ds, backbone_spec=spec), plain, atol=1e-6)
    np.testing.assert_allclose(engine.embed(model, ds.load, 10, backbone_spec=spec), plain, atol=1e-6)
    assert model.training is False
    with pytest.raises(ConfigError, match="flip"):
        engine.embed(model, images, backbone_spec=spec, flip="mean")
    with pytest.raises(ConfigError, match="needs n"):
        engine.embed(model, ds.load, backbone_spec=spec)


# --------------------------------------------------- real faces: it learns
def test_loss_decreases_on_real_att_faces(tmp_path):
    root = need_data("att_faces")
    eng = build(None)
    eng.seed_everything(0)
    faces = att_imageset(root, range(1, 11))  # s1-s10, 100 images
    out = eng.train(TinyNet(width=8, dropout=0.0), SoftmaxLoss(num_classes=10), faces,
                    backbone_spec=tiny_spec(32),
                    settings=TrainSettings(epochs=8, batch_size=20, lr=0.1, warmup_steps=3,
                                           checkpoint_every=1000),
                    workdir=tmp_path, seed=0, progress=False)
    loss = out.history["loss"]
    assert out.steps == 40 and len(loss) == 40
    first, last = np.mean(loss[:5]), np.mean(loss[-5:])
    assert first > 2.0  # ~ln(10) at the start
    assert last < 0.6 * first, (first, last)
    assert np.mean(out.history["accuracy"][-5:]) > 0.5
