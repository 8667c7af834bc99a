"""Shared checks and helpers of the built-in losses (imports torch)."""

from __future__ import annotations

import torch

from harness.errors import ConfigError, HarnessError

__all__ = ["LossInputError", "check_classes", "check_inputs", "full_precision"]


class LossInputError(HarnessError, ValueError):
    """A loss was given embeddings or labels it cannot use; the message says why."""


def check_classes(name: str, num_classes: int) -> None:
    """A classifier loss needs at least two classes."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(
            f"{name}: a classifier loss needs num_classes >= 2, got {num_classes!r}; "
            "check that the training set has at least two identities"
        )


def check_inputs(
    name: str,
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    embedding_size: int,
    num_classes: int | None = None,
) -> None:
    """Shapes (N, D) and (N,), integer labels, and labels in [0, num_classes)."""
    if embeddings.dim() != 2 or embeddings.shape[1] != embedding_size:
        raise LossInputError(
            f"{name}: expected embeddings of shape (N, {embedding_size}), got {tuple(embeddings.shape)}"
        )
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise LossInputError(
            f"{name}: expected labels of shape ({embeddings.shape[0]},) to match the embeddings, "
            f"got {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise LossInputError(f"{name}: labels must be integer class indices, got dtype {labels.dtype}")
    if num_classes is not None and labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise LossInputError(
                f"{name}: labels must lie in [0, {num_classes}) (num_classes={num_classes}), "
                f"got values from {low} to {high}"
            )


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when it is half / bfloat16 (margins and exp need the range);
    float32 and float64 pass unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
