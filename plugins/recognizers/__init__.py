"""Built-in recognizers: specs only; implementations are imported when selected."""

from __future__ import annotations

from harness.hookspecs import hookimpl


@hookimpl
def register_recognizers():
    return []
