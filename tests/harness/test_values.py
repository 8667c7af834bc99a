"""The shared message and number helpers: one "did you mean", one short repr, one finite float."""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np
import pytest

from harness._values import ECHO_LIMIT, did_you_mean, finite_float, one_line, short_repr
from harness.registry import UnknownComponentError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_did_you_mean():
    assert did_you_mean("arcfase", ["arcface", "cosface", "softmax"]) == " — did you mean 'arcface'?"
    assert did_you_mean("resnet2", ["resnet36", "resnet20"], n=2) == " — did you mean 'resnet20' or 'resnet36'?"
    assert did_you_mean("zzz", ["arcface"]) == ""
    assert did_you_mean("a" * 100_000, ["a"]) == ""  # no quadratic matching of a pasted blob


@pytest.mark.parametrize("value", ["x" * 100_000, list(range(100_000)), b"\xff" * 5000, 10**5000],
                         ids=["str", "list", "bytes", "huge-int"])
def test_short_repr_caps_any_value(value):
    text = short_repr(value)
    assert len(text) <= ECHO_LIMIT + 30
    if isinstance(value, (str, bytes)):
        assert f"({len(value)} characters)" in text


def test_short_repr_never_expands_a_shared_structure():
    bomb: list = ["lol"]
    for _ in range(30):  # 2**30 leaves if written out, as a YAML alias bomb gives
        bomb = [bomb, bomb]
    assert len(short_repr(bomb)) <= ECHO_LIMIT + 30


def test_short_repr_keeps_short_values_exact():
    assert short_repr("0.1") == "'0.1'" and short_repr(3) == "3"


def test_one_line():
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x " * 1000, limit=50)) == 50


@pytest.mark.parametrize("value, expected", [
    (1, 1.0), ("0.5", 0.5), (np.float32(2.5), 2.5), (np.int64(3), 3.0),
    (None, None), (True, None), ("abc", None), (float("nan"), None), (math.inf, None), ("-inf", None),
    (10**400, None), ([1], None),
], ids=str)
def test_finite_float(value, expected):
    assert finite_float(value) == expected


def test_unknown_component_message_is_capped():
    err = UnknownComponentError("backbone", "r" * 100_000, ["resnet20", "resnet36"])
    assert len(str(err)) < 300 and "Available backbones: resnet20, resnet36." in str(err)
    assert "did you mean 'resnet20'" in str(UnknownComponentError("backbone", "resnet2", ["resnet20"]))


def test_one_home_each():
    """No second copy of "did you mean" or of the finite-float helper in harness/ or plugins/."""
    offenders = []
    for path in [*ROOT.joinpath("harness").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        if path.name == "_values.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "get_close_matches" in text or re.search(r"return \w+ if math\.isfinite\(\w+\) else None", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"use harness._values instead in {offenders}"
