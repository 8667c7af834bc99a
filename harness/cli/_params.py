"""Click parameter types shared by the commands."""

from __future__ import annotations

from typing import Any

import click

from harness._values import did_you_mean, short_repr
from harness.specs import KINDS

__all__ = ["ComponentName", "KindName", "normalise_kind"]

_PLURALS = {"backbones": "backbone", "losses": "loss", "recognizers": "recognizer",
            "detectors": "detector", "inpainters": "inpainter", "datasets": "dataset",
            "engines": "engine"}


def normalise_kind(text: str) -> str:
    t = text.strip().lower()
    return _PLURALS.get(t, t)


class ComponentName(click.ParamType):
    """A component of one kind, checked against the registry with "did you mean"."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from harness.registry import UnknownComponentError, get_registry

        try:
            return get_registry().get(self.kind, str(value)).name
        except UnknownComponentError as exc:
            self.fail(str(exc), param, ctx)


class KindName(click.ParamType):
    name = "kind"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        kind = normalise_kind(str(value))
        if kind not in KINDS:
            self.fail(f"unknown kind {short_repr(value)}{did_you_mean(kind, KINDS)} Kinds: {', '.join(KINDS)}.",
                      param, ctx)
        return kind
