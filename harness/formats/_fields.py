"""Bounded parsing of the numbers inside data files, shared by the format readers.

``str.isdigit`` accepts '²' and '٣', ``int`` refuses numbers over 4,300
digits and ``int(float)`` truncates 1.7 and overflows on inf — so every
reader takes its integers and class labels from here, and a bad value is one
:class:`~harness.errors.DataError` naming where it was found.
"""

from __future__ import annotations

import math
import re

from harness._values import short_repr
from harness.errors import DataError

__all__ = ["ascii_int", "class_label", "label_limit"]

_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII digits only; 18 digits always fit in int64


def ascii_int(token: str | bytes, *, lo: int = 0, hi: int = (1 << 63) - 1) -> int | None:
    """``int(token)`` when it is 1-18 ASCII digits within ``lo..hi``, else None."""
    if isinstance(token, (bytes, bytearray)):
        try:
            token = bytes(token).decode("ascii")
        except UnicodeDecodeError:
            return None
    if not _DIGITS.fullmatch(token):
        return None
    n = int(token)
    return n if lo <= n <= hi else None


def label_limit(records: int) -> int:
    """The bound on class labels of a file of ``records`` records: 65,536 or the record
    count, whichever is larger (a dataset's identity list is sized from its largest label)."""
    return max(1 << 16, records)


def class_label(value: object, where: str, limit: int) -> int:
    """A class label as an ``int`` in ``0 .. limit - 1``.

    Integers and integral floats are accepted (MXNet stores labels as
    float32, TFRecord as int64 or float); bytes, NaN, inf, fractions and
    out-of-range values are a :class:`DataError`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: label {short_repr(value, 40)} is a {type(value).__name__}; expected an "
                        "integer class index — the file is corrupt or stores labels in another feature")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise DataError(f"{where}: label {value!r} is not a whole number; expected an integer class index "
                        "(0, 1, 2, ...) — the file is corrupt")
    if not 0 <= value < limit:
        raise DataError(f"{where}: label {short_repr(value, 40)} is outside 0..{limit - 1}; expected a class "
                        f"index below {limit:,} — the file is corrupt or its header is wrong")
    return int(value)
