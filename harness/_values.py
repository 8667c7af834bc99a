"""Small helpers every layer shares for values it echoes or reads.

* :func:`did_you_mean` — the one "did you mean …?" hint of every unknown-name
  message (registry, config keys, CLI kinds and commands);
* :func:`short_repr` — a value as an error message may quote it: at most
  ~80 characters, whatever the user typed;
* :func:`finite_float` — a number as a finite ``float``, or None (reports,
  results and option conversion).

Pure standard library: importable anywhere without a framework.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from typing import Any, Iterable

__all__ = ["ECHO_LIMIT", "did_you_mean", "finite_float", "one_line", "short_repr"]

#: The most characters of a user's value an error message quotes.
ECHO_LIMIT = 80


def did_you_mean(name: object, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> str:
    """``" — did you mean 'x'?"`` (or ``'x' or 'y'``) for the close matches of
    ``name`` among ``choices``; ``""`` when none is close."""
    text = str(name)
    if len(text) > 200:  # nothing that long is a typo of a short name
        return ""
    close = difflib.get_close_matches(text, [str(c) for c in choices], n=n, cutoff=cutoff)
    if not close:
        return ""
    return f" — did you mean {' or '.join(repr(c) for c in close)}?"


def _reprlib(limit: int) -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel = 3
    r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdeque = r.maxarray = r.maxdict = 8
    r.maxstring = r.maxother = r.maxlong = limit
    return r


def short_repr(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, shortened to about ``limit`` characters.

    Text states its full length; containers show their first items and
    nesting levels only (never built in full, so a YAML alias bomb is cheap);
    an int too long for ``repr`` is described by its size.  Never raises.
    """
    if isinstance(value, (str, bytes)):
        text = repr(value[: limit + 1])
        if len(value) <= limit and len(text) <= limit + 20:
            return text
        return f"{text[: max(limit - 20, 8)]}… ({len(value)} characters)"
    try:
        text = _reprlib(limit).repr(value)
    except ValueError:  # an int beyond sys.get_int_max_str_digits()
        bits = value.bit_length() if isinstance(value, int) else 0
        return f"<an integer of {bits} bits>"
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit + 20 else text[:limit] + "…"


def one_line(text: object, limit: int = 300) -> str:
    """``text`` with its whitespace runs collapsed to single spaces, at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, else None (None, a bool, no number, NaN or ±inf)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None
