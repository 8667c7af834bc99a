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
        ({"dropout": "x"}, "expected a number"),
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
    assert set(KINDS) == {"backbone", "loss", "recognizer", "detector", "liveness", "inpainter", "dataset", "engine"}
    assert LossSpec.kind == "loss"
