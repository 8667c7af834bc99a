"""Input checks shared by the metric modules.

Every check raises :class:`MetricInputError` (a :class:`HarnessError` and a
:class:`ValueError`) whose message names the argument, what was wrong and what
was expected.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.errors import HarnessError

__all__ = ["MetricInputError", "as_scores", "as_labels", "check_pair", "check_rate", "check_threshold"]


class MetricInputError(HarnessError, ValueError):
    """Input a metric cannot be computed on (NaN scores, empty class, ...)."""


def as_scores(x: Any, name: str = "scores") -> np.ndarray:
    """A 1-D float64 array of finite values."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MetricInputError(f"{name}: cannot be read as numbers ({exc}); expected a 1-D array of floats") from None
    if a.ndim != 1:
        a = a.reshape(-1) if a.ndim == 0 or (a.ndim == 2 and 1 in a.shape) else a
        if a.ndim != 1:
            raise MetricInputError(f"{name}: has shape {a.shape}; expected a 1-D array")
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"{name}: {int(bad.sum())} value(s) are NaN or infinite (first at index {i}: {a[i]}); "
            "expected finite scores"
        )
    return a


def as_labels(y: Any, name: str = "labels") -> np.ndarray:
    """A 1-D bool array from labels in {0, 1} (or booleans)."""
    a = np.asarray(y)
    if a.ndim != 1:
        a = a.reshape(-1) if a.ndim == 0 or (a.ndim == 2 and 1 in a.shape) else a
        if a.ndim != 1:
            raise MetricInputError(f"{name}: has shape {a.shape}; expected a 1-D array of 0/1")
    if a.dtype == bool:
        return a
    try:
        f = a.astype(np.float64)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name}: cannot be read as numbers; expected 0 (impostor) or 1 (genuine)") from None
    bad = ~((f == 0) | (f == 1))
    if bad.any():
        vals = sorted({repr(v) for v in a[bad][:5].tolist()})
        raise MetricInputError(
            f"{name}: values must be 0 or 1 (1 = genuine / bona fide); found {', '.join(vals)} "
            f"({int(bad.sum())} value(s))"
        )
    return f == 1


def check_pair(scores: Any, labels: Any, *, need_both: bool = True,
               scores_name: str = "scores", labels_name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Checked (scores, labels); with ``need_both`` each class must be present."""
    s = as_scores(scores, scores_name)
    y = as_labels(labels, labels_name)
    if len(s) != len(y):
        raise MetricInputError(
            f"{scores_name} and {labels_name} differ in length ({len(s)} vs {len(y)}); expected one label per score"
        )
    if need_both:
        n_gen = int(y.sum())
        if n_gen == 0 or n_gen == len(y):
            missing = "genuine (label 1)" if n_gen == 0 else "impostor (label 0)"
            raise MetricInputError(
                f"{labels_name}: no {missing} entries among {len(y)}; this metric needs both classes"
            )
    return s, y


def check_rate(value: Any, name: str) -> float:
    """A rate target in (0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name}: {value!r} is not a number; expected a rate in (0, 1]") from None
    if not (math.isfinite(v) and 0.0 < v <= 1.0):
        raise MetricInputError(f"{name}: {value!r} is outside (0, 1]; expected e.g. 1e-3")
    return v


def check_threshold(value: Any, name: str = "threshold") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name}: {value!r} is not a number") from None
    if math.isnan(v):
        raise MetricInputError(f"{name}: is NaN; expected a number (±inf allowed)")
    return v
