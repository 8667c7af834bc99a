"""The error every user-facing failure derives from.

The CLI prints a :class:`HarnessError` as one message and exits non-zero
(the traceback only with ``--debug``).  A message says what was wrong, what
was expected and how to fix it.
"""

from __future__ import annotations

__all__ = ["HarnessError", "DataError", "ConfigError"]


class HarnessError(Exception):
    """A failure whose message is meant for the user as is."""

    exit_code = 2


class ConfigError(HarnessError):
    """A run configuration that cannot be run (bad flag, YAML key, option)."""


class DataError(HarnessError):
    """Data that is missing, malformed or corrupt; the message names the file."""
