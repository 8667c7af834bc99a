"""The tf engine's training features beyond the basic loop: mixed precision (Keras policies, loss
scaling), MirroredStrategy over two logical CPU devices, and the SavedModel of the trained backbone.

Tiny networks and input sizes keep each test to seconds; the SavedModel is checked on real LFW
faces with a real backbone (MobileFaceNet).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import need_data

tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install 'facebench[tf]')")

sys.path.insert(0, str(Path(__file__).parent))

from _tf_fixtures import lfw_faces, synthetic_imageset, tiny_keras_model, tiny_loss, tiny_spec  # noqa: E402

from facebench_plugins.engines._tf_trainer import (  # noqa: E402
    LossScale,
    embedding_head,
    precision_policy,
    precision_scope,
)
from facebench_plugins.engines._trainer import cpu_bf16_fast  # noqa: E402
from facebench_plugins.engines.options import TFEngineOptions  # noqa: E402
from facebench_plugins.engines.tf_engine import TFEngine  # noqa: E402
from harness.config import TrainSettings  # noqa: E402
from harness.errors import ConfigError  # noqa: E402
from harness.registry import get_registry  # noqa: E402

MIRRORED_SCRIPT = Path(__file__).with_name("_tf_mirrored_script.py")


def _train(tmp_path: Path, options: TFEngineOptions, *, steps: int = 4, resume: bool = False,
           loss_name: str = "arcface", **settings):
    engine = TFEngine(options)
    engine.seed_everything(0)
    model, loss = tiny_keras_model(dropout=0.1), tiny_loss(loss_name, classes=8)
    s = TrainSettings(**{"epochs": 1, "max_steps": steps, "batch_size": 8, "lr": 0.05, "warmup_steps": 0,
                         "checkpoint_every": 100, **settings})
    out = engine.train(model, loss, synthetic_imageset(n=64, classes=8), backbone_spec=tiny_spec(), settings=s,
                       workdir=tmp_path, seed=0, resume=resume, progress=False)
    return engine, out


# ---------------------------------------------------------------- precision
@pytest.mark.parametrize("options, device, expected", [
    ({"precision": "fp32"}, "/CPU:0", "float32"),
    ({}, "/GPU:0", "mixed_float16"),  # no such GPU here, so not bf16; amp is on by default, as for torch
    ({"amp": False}, "/GPU:0", "float32"),
    ({"cpu_bf16": True}, "/CPU:0", "mixed_bfloat16"),
    ({"cpu_bf16": True}, "/GPU:1", "mixed_float16"),
    ({"precision": "bf16"}, "/CPU:0", "mixed_bfloat16"),
    ({"precision": "bf16", "amp": True}, "/GPU:0", "mixed_bfloat16"),
    ({"precision": "auto", "amp": False}, "/GPU:7", "float32"),  # no such GPU: not native bf16
], ids=lambda v: str(v))
def test_precision_policy_follows_the_torch_engines_settings(options, device, expected):
    assert precision_policy(TFEngineOptions(**options), device) == expected


def test_precision_auto_on_the_cpu_is_bf16_where_the_cpu_computes_it():
    expected = "mixed_bfloat16" if cpu_bf16_fast(mkldnn=True) else "float32"
    assert precision_policy(TFEngineOptions(precision="auto"), "/CPU:0") == expected
    with pytest.raises(ValueError, match="tf.precision='fp16'"):
        TFEngineOptions(precision="fp16")


def test_precision_scope_keeps_the_embedding_head_and_variables_float32():
    model = tiny_keras_model()
    names = [layer.name for layer in model.layers]
    head = embedding_head(model)
    assert names[head:] == ["fc", "features"]
    x = tf.random.stateless_normal((2, 32, 32, 3), seed=(1, 2))
    with precision_scope(model, "mixed_bfloat16"):
        assert model.get_layer("conv1").compute_dtype == "bfloat16"
        assert model.get_layer("fc").compute_dtype == model.get_layer("features").compute_dtype == "float32"
        low = model(x, training=False)
    assert low.dtype == tf.float32
    assert all(layer.compute_dtype == "float32" for layer in model.layers)  # restored on exit
    full = model(x, training=False)
    assert not np.array_equal(low.numpy(), full.numpy())  # the body did compute in bf16
    np.testing.assert_allclose(low.numpy(), full.numpy(), rtol=0.1, atol=0.1)
    assert all(v.dtype == "float32" for v in model.variables if "seed" not in v.path)


def test_bf16_training_runs_finite_with_float32_variables(tmp_path):
    _e, full = _train(tmp_path / "fp32", TFEngineOptions(saved_model=False), loss_name="softmax")
    engine, low = _train(tmp_path / "bf16", TFEngineOptions(precision="bf16", saved_model=False), loss_name="softmax")
    assert low.steps == 4 and all(np.isfinite(low.history["loss"]))
    # same weights and batch at the first step, bf16 arithmetic: close to float32's loss, not equal to it
    assert low.history["loss"][0] != full.history["loss"][0]
    assert low.history["loss"][0] == pytest.approx(full.history["loss"][0], rel=0.02)
    assert all(v.dtype == "float32" for v in low.model.weights) and all(
        v.dtype == tf.float32 for v in low.loss_fn.variables)
    assert all(layer.compute_dtype == "float32" for layer in low.model.layers)  # the model is handed back as built
    from facebench_plugins.engines._tf_trainer import read_checkpoint

    ck = read_checkpoint(low.checkpoint)
    assert ck["meta"]["plan"]["precision"] == "mixed_bfloat16"
    assert all(a.dtype == np.float32 for a in ck["model"] + ck["opt"][:-1])
    emb = engine.embed(low.model, synthetic_imageset(n=6).load, 6, backbone_spec=tiny_spec(), batch_size=3)
    assert emb.dtype == np.float32 and np.isfinite(emb).all()


def test_a_run_does_not_resume_across_precisions(tmp_path):
    _train(tmp_path, TFEngineOptions(saved_model=False), steps=2)
    with pytest.raises(ConfigError, match="another training plan"):
        _train(tmp_path, TFEngineOptions(precision="bf16", saved_model=False), steps=3, resume=True)


def test_loss_scale_skips_overflow_halves_and_grows():
    """The dynamic rule (Keras LossScaleOptimizer's): x2 after `growth_interval` finite steps, /2 on overflow."""
    off = LossScale(False)
    loss = tf.constant(3.0)
    assert off.scaled(loss) is loss and off.values() == []
    scale = LossScale(True, initial=2.0 ** 15, growth_interval=2)
    assert float(scale.scaled(loss)) == 3.0 * 2 ** 15
    np.testing.assert_array_equal(scale.unscale([tf.constant([2.0 ** 15, 2.0 ** 16])])[0].numpy(), [1.0, 2.0])
    assert bool(scale.all_finite([tf.constant([1.0]), tf.constant([np.inf])])) is False
    update = tf.function(scale.update)  # as the trainer's step runs it: in a graph
    update(tf.constant(False))
    assert float(scale.scale) == 2.0 ** 14 and int(scale.good_steps) == 0
    update(tf.constant(True))
    assert float(scale.scale) == 2.0 ** 14 and int(scale.good_steps) == 1
    update(tf.constant(True))
    assert float(scale.scale) == 2.0 ** 15 and int(scale.good_steps) == 0
    for _ in range(20):
        update(tf.constant(False))
    assert float(scale.scale) == 1.0  # never below 1
    again = LossScale(True)
    again.load_values(scale.values())
    assert float(again.scale) == 1.0


def _float16_grads(scale: LossScale) -> list[tf.Tensor]:
    """d/dw of a float16 product w * 1000 (a float32 loss), taken through ``scale``."""
    w = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        loss = tf.cast(tf.cast(w, tf.float16) * tf.constant(1000.0, tf.float16), tf.float32)
        scaled = scale.scaled(loss)
    return scale.unscale(tape.gradient(scaled, [w]))


def test_float16_gradients_that_overflow_are_skipped_and_halve_the_scale():
    """At 2^15 the float16 backward pass overflows (2^15 x 1000 > 65504): not finite, scale halved;
    at a scale float16 can hold, the unscaled gradient is exact."""
    big = LossScale(True)
    finite = big.all_finite(_float16_grads(big))
    assert not bool(finite)
    big.update(finite)
    assert float(big.scale) == 2.0 ** 14
    small = LossScale(True, initial=32.0)
    (grad,) = _float16_grads(small)
    assert bool(small.all_finite([grad])) and float(grad) == 1000.0


# ------------------------------------------------------------ several devices
def test_mirrored_strategy_on_two_logical_cpus_matches_one_device(tmp_path):
    """Each global batch split over two logical CPU devices: with no BatchNorm the per-step losses
    and the final weights equal one device's to 1e-5 (only the reduction order differs); with
    per-replica BatchNorm and the center loss the loss decreases."""
    out = tmp_path / "mirrored.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    r = subprocess.run([sys.executable, str(MIRRORED_SCRIPT), str(out), str(tmp_path / "work")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads(out.read_text())
    assert len(res["logical_cpus"]) == 2
    plain, bn = res["plain"], res["batchnorm"]
    for run in (plain, bn):
        assert "replicas" not in run["single_plan"] and run["mirrored_plan"]["replicas"] == 2
    assert len(plain["mirrored_loss"]) == len(plain["single_loss"]) == 8
    np.testing.assert_allclose(plain["mirrored_loss"], plain["single_loss"], rtol=1e-5, atol=1e-6)
    assert plain["max_weight_diff"] <= 1e-5 and plain["max_loss_variable_diff"] <= 1e-5
    losses = bn["mirrored_loss"]
    assert len(losses) == 16 and all(np.isfinite(losses)) and np.mean(losses[-4:]) < np.mean(losses[:4])


def test_a_batch_smaller_than_the_replicas_is_refused(monkeypatch, tmp_path):
    import facebench_plugins.engines._tf_trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "replica_devices", lambda options, device: ["/CPU:0", "/CPU:1", "/CPU:2"])
    monkeypatch.setattr(trainer_mod.tf.distribute, "MirroredStrategy", lambda devices: object())
    with pytest.raises(ConfigError, match="batch_size=2 cannot be split over 3 devices"):
        _train(tmp_path, TFEngineOptions(saved_model=False), batch_size=2)


# ---------------------------------------------------------------- SavedModel
def test_training_writes_a_saved_model_that_embeds_like_the_engine(tmp_path):
    """`<run>/saved_model/` reloaded with tf.saved_model.load gives the in-memory model's embeddings
    of real LFW faces to 1e-5, from normalised floats and from RGB uint8."""
    root = need_data("lfw_home/lfw_funneled")
    reg = get_registry()
    opts = {"input_size": (64, 64), "embedding_size": 32}
    spec = dataclasses.replace(reg.get("backbone", "mobilefacenet"), input_size=(64, 64), embedding_size=32)
    from facebench_plugins.engines._tf_backbones import build_keras_backbone

    engine = TFEngine(TFEngineOptions())
    engine.seed_everything(0)
    model = build_keras_backbone("mobilefacenet", reg.get("backbone", "mobilefacenet").make_options(opts))
    s = TrainSettings(epochs=1, max_steps=2, batch_size=8, lr=0.05, checkpoint_every=100)
    out = engine.train(model, tiny_loss("softmax", classes=8, emb=32), synthetic_imageset(n=16, size=64),
                       backbone_spec=spec, settings=s, workdir=tmp_path, seed=0, progress=False)
    folder = tmp_path / "saved_model"
    assert (folder / "saved_model.pb").is_file() and not list(tmp_path.glob(".saved_model*"))
    info = json.loads((folder / "assets.extra" / "facebench.json").read_text())
    assert info["input_size"] == [64, 64] and info["embedding_size"] == 32 and info["steps"] == 2
    assert info["weights_sha256"] == engine.weights_sha256(out.model)

    from facebench_plugins.engines._tf_trainer import to_hwc
    from facebench_plugins.engines._data import ImageTransform

    faces = lfw_faces(root, (64, 64))
    expected = engine.embed(out.model, list(faces), backbone_spec=spec, batch_size=len(faces))
    loaded = tf.saved_model.load(str(folder))
    transform = ImageTransform((64, 64), spec.mean, spec.std)
    x = tf.constant(np.stack([to_hwc(transform, f) for f in faces]))
    np.testing.assert_allclose(loaded.serve(x).numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(loaded.serve_rgb(tf.constant(faces)).numpy(), expected, rtol=0, atol=1e-5)
    by_signature = loaded.signatures["serving_default"](x)
    np.testing.assert_allclose(next(iter(by_signature.values())).numpy(), expected, rtol=0, atol=1e-5)
    assert np.abs(expected).max() > 1e-3  # a real, non-degenerate embedding


def test_saved_model_can_be_switched_off_and_replaces_an_old_one(tmp_path):
    _train(tmp_path / "off", TFEngineOptions(saved_model=False), steps=1)
    assert not (tmp_path / "off" / "saved_model").exists()
    _train(tmp_path / "on", TFEngineOptions(), steps=1)
    info = tmp_path / "on" / "saved_model" / "assets.extra" / "facebench.json"
    first = json.loads(info.read_text())
    _e, second = _train(tmp_path / "on", TFEngineOptions(), steps=2)  # a longer run in the same folder
    again = json.loads(info.read_text())
    assert first["steps"] == 1 and again["steps"] == second.steps == 2
    assert again["weights_sha256"] == _e.weights_sha256(second.model) != first["weights_sha256"]
    assert not [p.name for p in (tmp_path / "on").iterdir() if p.name.startswith(".saved_model")]  # no leftovers
