"""RunConfig: YAML + flag merging, grid expansion, validation."""

from __future__ import annotations

import types

import pytest

from harness.config import DataRef, RunConfig, TrainSettings, load_yaml, parse_option_flags
from harness.errors import ConfigError
from harness.hookspecs import hookimpl
from harness.registry import Registry, UnknownComponentError
from harness.specs import BackboneSpec, DatasetSpec, DetectorSpec, LossSpec, RecognizerSpec
from dataclasses import dataclass


@dataclass(frozen=True)
class DropOpts:
    dropout: float = 0.0


def _registry():
    mod = types.ModuleType("fixture_plugin")

    def bb():
        return [BackboneSpec(name=n, summary=n, factory="a:b", framework="torch", options=DropOpts)
                for n in ("mobilefacenet", "resnet20", "lresnet50")]

    def losses():
        return [LossSpec(name=n, summary=n, factory="a:b", framework="torch") for n in ("arcface", "softmax")] + [
            LossSpec(name="tf_arcface", summary="tf", factory="a:b", framework="tensorflow")]

    def dets():
        return [DetectorSpec(name=n, summary=n, factory="a:b") for n in ("mtcnn", "retinaface")]

    def recs():
        return [RecognizerSpec(name="dlib_resnet", summary="d", factory="a:b")]

    def data():
        return [DatasetSpec(name=n, summary=n, factory="a:b") for n in ("synthetic", "lfw", "att")]

    for name, fn in dict(register_backbones=bb, register_losses=losses, register_detectors=dets,
                         register_recognizers=recs, register_datasets=data).items():
        setattr(mod, name, hookimpl(fn))
    return Registry(load_entry_points=False, plugins=[mod])


def test_default_is_one_trained_combination_on_synthetic():
    (run,) = RunConfig().expand(_registry())
    assert run.task == "recognition"
    assert dict(run.components) == {"backbone": "mobilefacenet", "loss": "arcface"}
    assert run.train == (DataRef("synthetic"),) and run.eval == (DataRef("synthetic"),)
    assert run.training.epochs == 12 and run.training.time_budget == 200.0
    # a setting the user gives wins over the default run's training
    (run,) = RunConfig(training=TrainSettings(epochs=2)).expand(_registry())
    assert run.training.epochs == 2 and run.training.time_budget == 200.0
    # naming components turns the default training off
    (run,) = RunConfig(backbones=("resnet20",), losses=("arcface",)).expand(_registry())
    assert run.training == TrainSettings()


def test_backbone_by_loss_grid_in_stable_order():
    cfg = RunConfig(backbones=("resnet20", "lresnet50"), losses=("softmax", "arcface"))
    runs = cfg.expand(_registry())
    assert [r.slug() for r in runs] == [
        "resnet20-softmax", "resnet20-arcface", "lresnet50-softmax", "lresnet50-arcface"]
    assert len({r.config_hash() for r in runs}) == 4


def test_detector_by_recognizer_grid_needs_eval():
    cfg = RunConfig(recognizers=("dlib_resnet",), detectors=("mtcnn", "retinaface"))
    with pytest.raises(ConfigError, match="needs data to evaluate on: add --eval"):
        cfg.expand(_registry())
    runs = RunConfig(recognizers=("dlib_resnet",), detectors=("mtcnn", "retinaface"),
                     eval=("lfw=/data/lfw",)).expand(_registry())
    assert [r.slug() for r in runs] == ["mtcnn-dlib_resnet", "retinaface-dlib_resnet"]
    assert all(r.train == () for r in runs)
    assert runs[0].eval == (DataRef("lfw", "/data/lfw"),)


def test_detector_alone_is_a_detection_run():
    (run,) = RunConfig(detectors=("mtcnn",), eval=("lfw=/x",)).expand(_registry())
    assert run.task == "detection" and dict(run.components) == {"detector": "mtcnn"}


def test_loss_alone_uses_default_backbone():
    runs = RunConfig(losses=("softmax",)).expand(_registry())
    assert [r.slug() for r in runs] == ["mobilefacenet-softmax"]


def test_unknown_names_are_caught_with_suggestions():
    with pytest.raises(UnknownComponentError, match="did you mean 'arcface'"):
        RunConfig(losses=("arcfase",)).expand(_registry())
    with pytest.raises(UnknownComponentError, match="unknown dataset 'lwf'.*did you mean 'lfw'"):
        RunConfig(eval=("lwf=/x",)).expand(_registry())


def test_mixed_frameworks_are_refused():
    with pytest.raises(ConfigError, match="torch model but loss 'tf_arcface' is tensorflow"):
        RunConfig(backbones=("resnet20",), losses=("tf_arcface",)).expand(_registry())


def test_options_are_validated_and_routed_to_their_component():
    cfg = RunConfig(backbones=("resnet20", "lresnet50"), options={"lresnet50": {"dropout": "0.4"}})
    runs = cfg.expand(_registry())
    assert runs[0].options == {} and runs[1].options == {"lresnet50": {"dropout": "0.4"}}
    with pytest.raises(ConfigError, match="no option 'drop'"):
        RunConfig(backbones=("lresnet50",), options={"lresnet50": {"drop": "1"}}).expand(_registry())
    with pytest.raises(ConfigError, match="not part of this run"):
        RunConfig(backbones=("resnet20",), options={"lresnet50": {"dropout": "1"}}).expand(_registry())


def test_option_changes_change_the_hash():
    a = RunConfig(backbones=("lresnet50",)).expand(_registry())[0]
    b = RunConfig(backbones=("lresnet50",), options={"lresnet50": {"dropout": "0.1"}}).expand(_registry())[0]
    c = RunConfig(backbones=("lresnet50",), seed=1).expand(_registry())[0]
    assert len({a.config_hash(), b.config_hash(), c.config_hash()}) == 3
    assert a.config_hash() == RunConfig(backbones=("lresnet50",)).expand(_registry())[0].config_hash()


def test_parse_option_flags():
    assert parse_option_flags(["lresnet50.dropout=0.1", "arcface.margin=0.5", "arcface.scale=64"]) == {
        "lresnet50": {"dropout": "0.1"}, "arcface": {"margin": "0.5", "scale": "64"}}
    for bad in ["dropout=0.1", "lresnet50.dropout", ".x=1", "a.=1"]:
        with pytest.raises(ConfigError, match="COMPONENT.KEY=VALUE"):
            parse_option_flags([bad])


def test_yaml_and_flags_merge_flags_win(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(
        "backbone: [resnet20, lresnet50]\nloss: softmax\ntrain: att=/data/att\n"
        "options: {lresnet50: {dropout: 0.2}}\nseed: 3\ntraining: {epochs: 4, lr: 0.05}\n"
    )
    cfg = load_yaml(p)
    assert cfg.backbones == ("resnet20", "lresnet50") and cfg.losses == ("softmax",)
    assert cfg.train == (DataRef("att", "/data/att"),)
    assert cfg.training == TrainSettings(epochs=4, lr=0.05)
    merged = cfg.merged({"losses": ("arcface",), "training": {"lr": 0.2},
                         "options": {"lresnet50": {"dropout": "0.3"}}})
    assert merged.losses == ("arcface",)          # flag wins
    assert merged.backbones == ("resnet20", "lresnet50")  # YAML kept
    assert merged.training.epochs == 4 and merged.training.lr == 0.2
    assert merged.options == {"lresnet50": {"dropout": "0.3"}}
    assert merged.seed == 3


@pytest.mark.parametrize(
    "text, match",
    [
        ("backbones: [a]\n", "unknown key 'backbones' — did you mean 'backbone'"),
        ("training: {epoch: 2}\n", "unknown training setting 'epoch' — did you mean 'epochs'"),
        ("training: {epochs: 0}\n", "epochs must be >= 1"),
        ("- a\n- b\n", "expected a mapping"),
        ("backbone: [a\n", "not valid YAML"),
        ("train: {att: /x, lfw: /y, extra: 1}\noptions: 3\n", "'options' must map"),
    ],
)
def test_bad_yaml_is_explained(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_yaml(p)


def test_missing_yaml_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_yaml(tmp_path / "nope.yaml")


def test_dataref_parse():
    assert DataRef.parse("LFW=../x") == DataRef("lfw", "../x")
    assert DataRef.parse({"att": None}) == DataRef("att")
    for bad in ["=x", "lfw="]:
        with pytest.raises(ConfigError, match="NAME=PATH"):
            DataRef.parse(bad)


def test_inpainter_runs_take_a_recognizer_or_a_backbone_with_weights(fresh_registry):
    base = dict(inpainters=("telea",), eval=("lfw=/data/lfw",))
    runs = RunConfig(**base, recognizers=("dlib_resnet",), backbones=("mobilefacenet",),
                     options={"mobilefacenet": {"weights": "casia"}}).expand(fresh_registry)
    assert [(r.task, dict(r.components)) for r in runs] == [
        ("inpainting", {"inpainter": "telea", "recognizer": "dlib_resnet"}),
        ("inpainting", {"inpainter": "telea", "backbone": "mobilefacenet"}),
    ]
    # a backbone without weights would verify with random features: refused, with the fix named
    with pytest.raises(ConfigError, match=r"-o mobilefacenet.weights="):
        RunConfig(**base, backbones=("mobilefacenet",)).expand(fresh_registry)
    with pytest.raises(ConfigError, match="drop --loss"):
        RunConfig(**base, backbones=("mobilefacenet",), losses=("arcface",),
                  options={"mobilefacenet": {"weights": "casia"}}).expand(fresh_registry)
    # --train trains the inpainter; the backbone stays a fixed verifier
    (run,) = RunConfig(inpainters=("demeshnet",), backbones=("mobilefacenet",), train=("mesh=/data/lfw",),
                       eval=("lfw=/data/lfw",), options={"mobilefacenet": {"weights": "casia"}}).expand(fresh_registry)
    assert run.task == "inpainting" and run.train == (DataRef("mesh", "/data/lfw"),)
