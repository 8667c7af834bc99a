"""Spec records: validation, options parsing, descriptions."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

import pytest

from harness.specs import (
    KINDS,
    BackboneSpec,
    LossSpec,
    OptionError,
    WeightsSpec,
    parse_option_value,
    resolve_factory,
)


@dataclass(frozen=True)
class Opts:
    dropout: float = 0.0
    depth: int = 50
    flip: bool = False
    mode: Literal["a", "b"] = "a"
    sizes: tuple[int, ...] = (112, 112)
    weights: str | None = None


def make(**kw):
    base = dict(name="net", summary="A net.", factory="math:sqrt", framework="none", options=Opts)
    base.update(kw)
    return BackboneSpec(**base)


def test_spec_is_frozen_and_meta_read_only():
    spec = make(meta={"params": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.meta["params"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(name="Net"), "lowercase"),
        (dict(name="my net"), "lowercase"),
        (dict(name=""), "lowercase"),
        (dict(framework="jax"), "framework"),
        (dict(options=dict), "dataclass"),
        (dict(factory="no_colon"), "module:attr"),
    ],
)
def test_invalid_specs_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(**bad)


def test_options_convert_from_cli_strings():
    spec = make()
    o = spec.make_options(
        {"dropout": "0.1", "depth": "100", "flip": "yes", "mode": "b", "sizes": "96,112", "weights": "none"}
    )
    assert o == Opts(dropout=0.1, depth=100, flip=True, mode="b", sizes=(96, 112), weights=None)
    assert spec.make_options({"weights": "x.pt"}).weights == "x.pt"


@pytest.mark.parametrize(
    "values, match",
    [
        ({"dropuot": "0.1"}, "no option 'dropuot'.*valid options: depth, dropout"),
        ({"depth": "deep"}, "net.depth='deep': expected an integer"),
        ({"dropout": "x"}, "expected a finite number"),
        ({"flip": "maybe"}, "expected a boolean"),
        ({"mode": "c"}, "expected one of a, b"),
    ],
)
def test_bad_options_name_the_problem(values, match):
    with pytest.raises(OptionError, match=match):
        make().make_options(values)


def test_parse_option_value_passes_non_strings_through():
    assert parse_option_value(int, 3) == 3
    assert parse_option_value(float, "1e-3") == pytest.approx(1e-3)


def test_resolve_factory_imports_lazily_and_reports_missing_attr():
    assert resolve_factory(make(factory="math:sqrt"))(4) == 2
    with pytest.raises(ImportError, match="names no attribute 'nope'"):
        resolve_factory(make(factory="math:nope"))


def test_unavailable_framework_names_the_extra(monkeypatch):
    import harness.specs as specs

    monkeypatch.setattr(specs, "framework_available", lambda fw: fw == "none")
    spec = make(framework="tensorflow")
    assert not spec.available
    assert spec.install_hint == "pip install 'facebench[tf]'"
    d = spec.describe()
    assert d["available"] is False and d["install"] == "pip install 'facebench[tf]'"


def test_describe_is_json_and_has_kind_fields():
    spec = make(weights=(WeightsSpec("w.pt", sha256="ab", license="MIT"),), input_size=(112, 96))
    d = json.loads(json.dumps(spec.describe()))
    assert d["kind"] == "backbone"
    assert d["input_size"] == [112, 96]
    assert d["options"]["depth"] == 50
    assert d["weights"][0]["license"] == "MIT"
    assert "factory" not in d


def test_every_kind_has_a_spec_class():
    assert set(KINDS) == {"backbone", "loss", "recognizer", "detector", "landmarker", "liveness", "inpainter", "dataset",
                          "engine"}
    assert LossSpec.kind == "loss"


# ------------------------------------------------ one converter for every source
@pytest.mark.parametrize("hint, raw, expected", [
    (float, "0.1", 0.1), (float, 0.1, 0.1), (float, 1, 1.0), (int, "3", 3), (int, 3, 3), (int, 3.0, 3),
    (bool, "yes", True), (bool, False, False), (bool, 1, True), (str, "x", "x"), (str, 5, "5"),
    (tuple[int, int], "96,112", (96, 112)), (tuple[int, int], [96, 112], (96, 112)), (tuple[int, ...], 5, (5,)),
    (Literal["a", "b"], "b", "b"), (str | None, None, None), (str | None, "none", None), (float | None, "2", 2.0),
])
def test_parse_option_value_gives_the_declared_type_from_text_and_native_values(hint, raw, expected):
    value = parse_option_value(hint, raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("hint, raw, match", [
    (float, "nan", "expected a finite number"), (float, float("inf"), "expected a finite number"),
    (float, True, "expected a finite number"), (float, [1], "expected a finite number"),
    (int, "1.5", "expected an integer"), (int, 1.5, "expected an integer"), (int, True, "expected an integer"),
    (int, "²", "expected an integer"), (int, "9" * 30, "sane size"), (int, 10**30, "sane size"),
    (bool, "maybe", "expected a boolean"), (bool, 2, "expected a boolean"),
    (str, {"a": 1}, "expected text"), (str, True, "expected text"),
    (tuple[int, int], {"a": 1}, "comma-separated list"), (Literal["a", "b"], 1, "expected one of a, b"),
])
def test_parse_option_value_refuses_wrong_types(hint, raw, match):
    with pytest.raises(OptionError, match=match):
        parse_option_value(hint, raw, where="net.key")


def test_option_values_are_what_the_dataclass_made_of_them():
    spec = make()
    assert spec.option_values({"dropout": "0.1", "sizes": "96"}) == {"dropout": 0.1, "sizes": (96,)}
    assert spec.option_values({"dropout": 0.1, "sizes": [96]}) == spec.option_values({"dropout": "0.1", "sizes": "96"})
    assert spec.option_values({}) == {}


def test_option_errors_suggest_and_cap():
    with pytest.raises(OptionError, match="no option 'dropuot' — did you mean 'dropout'\\?; valid options"):
        make().make_options({"dropuot": "0.1"})
    with pytest.raises(OptionError, match="must map key: value, got 5"):
        make().make_options(5)  # type: ignore[arg-type]
    with pytest.raises(OptionError) as info:
        make().make_options({"depth": "9" * 100_000})
    assert len(str(info.value)) < 200


def test_check_range_messages():
    from harness.specs import check_range

    check_range("a.b", 5, 1, 10, integer=True)
    with pytest.raises(OptionError, match=r"a.b=0: expected an integer in \[1, 10\]"):
        check_range("a.b", 0, 1, 10, integer=True)
    with pytest.raises(OptionError, match=r"a.b=2.5: expected an integer"):
        check_range("a.b", 2.5, 1, 10, integer=True)
    with pytest.raises(OptionError, match=r"a.s=0: expected a number > 0 and <= 1024"):
        check_range("a.s", 0, 0, 1024, low_open=True)
    with pytest.raises(OptionError, match=r"a.x=nan: expected a number >= 0"):
        check_range("a.x", float("nan"), 0)
