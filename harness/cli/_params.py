"""Click parameter types shared by the commands."""

from __future__ import annotations

from typing import Any

import click

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
            import difflib

            close = difflib.get_close_matches(kind, list(KINDS), n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            self.fail(f"unknown kind {value!r}{hint} Kinds: {', '.join(KINDS)}.", param, ctx)
        return kind
