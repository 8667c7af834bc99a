"""The :class:`Metric` record stored in results and shown in reports."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Metric"]


@dataclass(frozen=True)
class Metric:
    """One number with what it means.

    :param name: includes its operating point, e.g. ``tar_at_far_1e-4``.
    :param value: the number (``None`` when undefined, e.g. a FAR target
        below 1/N_impostor; the report prints "n/a").
    :param direction: ``"higher"`` or ``"lower"`` is better.
    :param convention: how it was computed, e.g. ``"strict: largest TAR with FAR <= target"``.
    :param ci: (low, high) confidence interval, where defined.
    :param std: standard deviation over folds, where defined.
    :param meta: anything else (threshold used, n, rule).
    """

    name: str
    value: float | None
    direction: str = "higher"
    convention: str = ""
    ci: tuple[float, float] | None = None
    std: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name!r}: direction must be 'higher' or 'lower'")
        if self.value is not None:
            v = float(self.value)
            object.__setattr__(self, "value", None if math.isnan(v) else v)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["ci"] is not None:
            d["ci"] = list(d["ci"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metric":
        d = dict(d)
        if d.get("ci") is not None:
            d["ci"] = tuple(d["ci"])
        return cls(**d)

    def better(self, other: "Metric") -> bool:
        """Whether this value beats ``other``'s (None never wins)."""
        if self.value is None:
            return False
        if other.value is None:
            return True
        return self.value > other.value if self.direction == "higher" else self.value < other.value
