"""RunConfig: YAML + flag merging, grid expansion, validation."""

from __future__ import annotations

import dataclasses
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import (
    DEFAULT_RUN_TRAINING,
    TRAINING_LENGTH,
    DataRef,
    RunConfig,
    TrainSettings,
    load_yaml,
    parse_option_flags,
)
from harness.errors import ConfigError, HarnessError
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
        from facebench_plugins.datasets._options import SyntheticOptions

        return [DatasetSpec(name=n, summary=n, factory="a:b", **({"options": SyntheticOptions} if n == "synthetic" else {}))
                for n in ("synthetic", "lfw", "att")]

    for name, fn in dict(register_backbones=bb, register_losses=losses, register_detectors=dets,
                         register_recognizers=recs, register_datasets=data).items():
        setattr(mod, name, hookimpl(fn))
    return Registry(load_entry_points=False, plugins=[mod])


def test_default_is_one_trained_combination_on_synthetic():
    (run,) = RunConfig().expand(_registry())
    assert run.task == "recognition"
    assert dict(run.components) == {"backbone": "mobilefacenet", "loss": "arcface"}
    assert run.train == (DataRef("synthetic"),) and run.eval == (DataRef("synthetic"),)
    assert run.training == dataclasses.replace(TrainSettings(), **DEFAULT_RUN_TRAINING)
    # a setting the user gives wins over the default run's training
    (run,) = RunConfig(training={"lr": 0.05}).expand(_registry())
    assert run.training == dataclasses.replace(TrainSettings(), **{**DEFAULT_RUN_TRAINING, "lr": 0.05})
    # a TrainSettings object is a complete schedule: nothing of the default run's
    (run,) = RunConfig(training=TrainSettings(epochs=2)).expand(_registry())
    assert run.training == TrainSettings(epochs=2)
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
    assert runs[0].options == {} and runs[1].options == {"lresnet50": {"dropout": 0.4}}
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


def test_a_model_file_counts_by_its_content_not_its_path(tmp_path):
    """Issue 15: a model replaced at the same path is a new run, never the finished old one."""
    base = RunConfig(backbones=("lresnet50",)).expand(_registry())[0]
    model = tmp_path / "model.onnx"
    model.write_bytes(b"first model")
    spec = dataclasses.replace(base, options={"onnx": {"model": str(model), "batch_size": 8}})
    first = spec.config_hash()
    assert first != base.config_hash()
    assert spec.config_hash() == first  # same bytes, same hash
    model.write_bytes(b"second model, same path")
    assert spec.config_hash() != first
    model.write_bytes(b"first model")
    assert spec.config_hash() == first  # content, not mtime
    missing = dataclasses.replace(base, options={"onnx": {"model": str(tmp_path / "gone.onnx")}})
    assert missing.config_hash() == missing.config_hash()  # a path that names no file is hashed as text


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
        ("training: {epochs: 0}\n", r"training.epochs=0: expected an integer in \[1, "),
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


# ------------------------------------------------ what the user gave (A6)
@pytest.mark.parametrize("training", [{"epochs": 1}, {"epochs": TrainSettings().epochs}])
def test_a_given_setting_wins_even_when_it_equals_the_default(training):
    """`harness run --epochs 1` on the default run trains one epoch: the
    value equals TrainSettings' default, yet the user gave it."""
    (run,) = RunConfig(training=training).expand(_registry())
    assert run.training.epochs == 1
    # how long to train is one decision: none of the default run's other length settings
    assert run.training.max_steps is None and run.training.time_budget is None
    assert set(TRAINING_LENGTH) == {"epochs", "max_steps"}


def test_a_time_budget_alone_caps_the_default_schedule():
    (run,) = RunConfig(training={"time_budget": 30}).expand(_registry())
    schedule = {k: v for k, v in DEFAULT_RUN_TRAINING.items() if k != "time_budget"}
    assert run.training == dataclasses.replace(TrainSettings(time_budget=30.0), **schedule)


def test_the_time_budget_can_be_switched_off():
    for off in (0, 0.0, None, "0", "none"):
        (run,) = RunConfig(training={"time_budget": off}).expand(_registry())
        assert run.training.time_budget is None
    with pytest.raises(ConfigError, match=r"training.time_budget=-1.0: expected a number in \[0, "):
        TrainSettings(time_budget=-1)


def test_given_settings_survive_yaml_flags_and_the_worker_round_trip(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("training: {epochs: 1}\n")
    from_yaml = load_yaml(p)
    assert from_yaml.training_given == {"epochs"}
    (run,) = from_yaml.expand(_registry())
    assert run.training.epochs == 1
    flags = RunConfig().merged({"training": {"epochs": 1, "lr": 0.1}})
    assert flags.training_given == {"epochs", "lr"}
    assert flags.expand(_registry())[0].training == run.training
    # what torchrun workers and the Docker runner read back is the same run
    for cfg in (RunConfig(), from_yaml, flags):
        back = RunConfig.from_mapping(cfg.to_mapping())
        assert [r.config_hash() for r in back.expand(_registry())] == [
            r.config_hash() for r in cfg.expand(_registry())]
    assert RunConfig().to_mapping()["training"] == {}


# ------------------------------------------------ one hash whatever the source (A7)
def test_a_flag_and_yaml_give_one_config_hash(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("backbone: resnet20\noptions: {resnet20: {dropout: 0.1}}\n")
    from_yaml = load_yaml(p).expand(_registry())
    from_flag = RunConfig(backbones=("resnet20",)).merged(
        {"options": parse_option_flags(["resnet20.dropout=0.1"])}).expand(_registry())
    assert from_flag[0].options == from_yaml[0].options == {"resnet20": {"dropout": 0.1}}
    assert from_flag[0].config_hash() == from_yaml[0].config_hash()
    # an int where a float is declared is the same setting too
    as_int = RunConfig(backbones=("resnet20",), options={"resnet20": {"dropout": 0}}).expand(_registry())
    as_text = RunConfig(backbones=("resnet20",), options={"resnet20": {"dropout": "0.0"}}).expand(_registry())
    assert as_int[0].config_hash() == as_text[0].config_hash()


# ------------------------------------------------ one schema (A8, A9, A10)
@pytest.mark.parametrize(
    "text, match",
    [
        ("seed: abc\n", r"seed='abc': expected an integer"),
        ("seed: -1\n", r"seed=-1: expected an integer in \[0, "),
        ("backbone: 5\n", r"backbone=5: expected a backbone name or a list of names"),
        ("loss: [arcface, {a: 1}]\n", r"loss=.*expected a loss name"),
        ("options: {resnet20: 5}\n", r"options.resnet20=5: expected a mapping of option: value"),
        ("eval_folds: zero\n", r"eval_folds='zero': expected an integer"),
        ("eval_folds: [0, -1]\n", r"eval_folds=-1: expected an integer in \[0, "),
        ("training: {epochs: three}\n", r"training.epochs='three': expected an integer"),
        ("training: {lr: .nan}\n", r"training.lr=nan: expected a finite number"),
        ("training: {batch_size: 1.5}\n", r"training.batch_size=1.5: expected an integer"),
        ("training: {optimizer: adam}\n", r"training.optimizer='adam': expected one of sgd, adamw"),
        ("training: [1]\n", r"training=\[1\]: expected a mapping of training settings"),
        ("force: maybe\n", r"force='maybe': expected a boolean"),
        ("reports: [a, b]\n", r"reports=\['a', 'b'\]: expected text"),
        ("train: 5\n", r"dataset 5 is not NAME or NAME=PATH"),
        ("launcher: {nproc_per_node: two}\n", r"launcher.nproc_per_node='two': expected an integer"),
    ],
)
def test_wrong_types_are_one_config_error_naming_key_value_and_type(tmp_path, text, match):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_yaml(p)
    message = str(info.value)
    assert message.startswith(f"{p}: ") and "\n" not in message and len(message) < 300


@pytest.mark.parametrize("content, match", [
    (b"seed: 1\n# caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 13\)"),
    (bytes(range(256)) * 4, "not UTF-8 text"),
    (b"seed: 1\x00\x01\n", "binary file"),
    (b"seed: " + b"9" * 5000 + b"\n", "not valid YAML"),
    (b"[" * 5000, "not valid YAML"),
], ids=["latin-1", "binary", "nul", "5000-digit-int", "deep-nesting"])
def test_unreadable_config_files_are_one_line(tmp_path, content, match):
    p = tmp_path / "c.yaml"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=match) as info:
        load_yaml(p)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_echoed_values_are_capped():
    huge = "x" * 100_000
    for make in (lambda: RunConfig(backbones=("resnet20",), options={"resnet20": {"dropout": huge}}).expand(_registry()),
                 lambda: RunConfig(backbones=("resnet20",), options={"resnet20": {huge: 1}}).expand(_registry()),
                 lambda: parse_option_flags([huge]),
                 lambda: RunConfig.from_mapping({huge: 1}),
                 lambda: RunConfig(train=(f"{huge}=",)),
                 lambda: RunConfig(backbones=("resnet20",), options={huge: {"a": 1}}).expand(_registry())):
        with pytest.raises(ConfigError) as info:
            make()
        assert len(str(info.value)) < 400, str(info.value)[:200]


def test_huge_integers_and_non_finite_numbers_are_refused():
    with pytest.raises(ConfigError, match="expected an integer of a sane size"):
        RunConfig(training={"max_steps": "99999999999999999999999"})
    with pytest.raises(ConfigError, match=r"training.lr=inf: expected a finite number"):
        RunConfig(training={"lr": float("inf")})
    with pytest.raises(ConfigError, match=r"training.batch_size=1000000: expected an integer in \[1, 65536\]"):
        TrainSettings(batch_size=1_000_000)


def test_docs_name_every_key():
    """docs/config.md documents every YAML key and every training and launcher setting."""
    from pathlib import Path

    from harness.config import YAML_KEYS, LauncherSettings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    keys = [*YAML_KEYS, *(f"training.{f.name}" for f in dataclasses.fields(TrainSettings)),
            *(f"launcher.{f.name}" for f in dataclasses.fields(LauncherSettings))]
    missing = [k for k in keys if f"`{k}`" not in doc]
    assert not missing, f"docs/config.md does not document {missing}"
    internal = {f.name for f in dataclasses.fields(RunConfig) if f.metadata.get("internal")}
    assert set(YAML_KEYS.values()) | internal == {f.name for f in dataclasses.fields(RunConfig)}


def test_docs_example_is_a_valid_config(tmp_path, fresh_registry):
    """The example YAML in docs/config.md loads and expands against the installed plugins."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text(encoding="utf-8")
    examples = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert examples
    for text in examples:
        p = tmp_path / "example.yaml"
        p.write_text(text)
        assert load_yaml(p).expand(fresh_registry)


# ------------------------------------------------ fuzz: nothing but the project's errors
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "abc", "0", "1", "-1", "1.5", "nan", "inf", "none", "true", "resnet20", "arcface",
                     "synthetic", "lfw=/x", "=x", "a,b", "²", "9" * 30, "x" * 300]),
    st.text(max_size=12),
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), _SCALARS), inner, max_size=4)),
    max_leaves=6)
_KEYS = st.sampled_from(["backbone", "loss", "recognizer", "detector", "train", "eval", "eval_folds", "options",
                         "training", "launcher", "seed", "reports", "force", "resume", "skip_bad", "backbones"])
_SETTINGS = st.dictionaries(st.sampled_from(["epochs", "max_steps", "time_budget", "batch_size", "lr", "optimizer",
                                             "grad_clip", "workers", "device", "init", "epoch", "nproc_per_node",
                                             "nnodes", "gpus"]), _VALUES, max_size=3)
_OPTIONS = st.dictionaries(st.sampled_from(["resnet20", "mobilefacenet", "synthetic", "arcface", "nope"]),
                           st.one_of(st.dictionaries(st.sampled_from(["dropout", "drop", "x"]), _VALUES, max_size=2),
                                     _SCALARS), max_size=2)
_CONFIGS = st.dictionaries(_KEYS, st.one_of(_VALUES, _SETTINGS, _OPTIONS), max_size=5)


@settings(max_examples=1_000, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=_CONFIGS)
def test_fuzzed_configs_raise_nothing_but_project_errors(data):
    """Any mapping gives a config or one line of ConfigError / RegistryError, and a config
    that expands reads back (as torchrun workers read it) into the same runs."""
    registry = _FUZZ_REGISTRY
    try:
        cfg = RunConfig.from_mapping(data, source="fuzz.yaml")
        runs = cfg.expand(registry)
        back = RunConfig.from_mapping(cfg.to_mapping())
        assert [r.config_hash() for r in back.expand(registry)] == [r.config_hash() for r in runs]
    except HarnessError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)[:300]


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(content=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                         _CONFIGS.map(lambda d: __import__("yaml").safe_dump(d, allow_unicode=True).encode())))
def test_fuzzed_config_files_raise_nothing_but_project_errors(content, tmp_path_factory):
    p = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    p.unlink(missing_ok=True)
    p.write_bytes(content)
    try:
        load_yaml(p).expand(_FUZZ_REGISTRY)
    except HarnessError as exc:
        assert "\n" not in str(exc), str(exc)[:300]


_FUZZ_REGISTRY = _registry()


@pytest.mark.parametrize("group, flag, yaml_value", [
    ("identification", "trials=5", 5), ("search", "max_memory=1048576", 1048576), ("tracking", "check_every=5", 5)])
def test_task_settings_from_a_flag_and_from_yaml_give_one_hash(group, flag, yaml_value):
    """-o identification.trials=5 (a string) and YAML's 5 are one setting: one config hash."""
    from harness.config import RunConfig, parse_option_flags
    from harness.registry import get_registry

    key = flag.partition("=")[0]
    base = ({"landmarkers": ("dlib_68",), "protocol": "tracking", "eval": ("video=/clip.mp4",)} if group == "tracking"
            else {"recognizers": ("dlib_resnet",), "protocol": "identification", "eval": ("att=/faces",)})
    from_flag = RunConfig(**base, options=parse_option_flags([f"{group}.{flag}"])).expand(get_registry())
    from_yaml = RunConfig(**base, options={group: {key: yaml_value}}).expand(get_registry())
    assert from_flag[0].options[group] == {key: yaml_value}
    assert from_flag[0].config_hash() == from_yaml[0].config_hash()
