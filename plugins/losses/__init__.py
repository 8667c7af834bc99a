"""Built-in losses: specs only; implementations are imported when selected."""

from __future__ import annotations

from harness.hookspecs import hookimpl


@hookimpl
def register_losses():
    return []
