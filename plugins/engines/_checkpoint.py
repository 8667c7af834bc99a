"""Checkpoint files: atomic writes, safe reads, and state-dict matching.

Every read uses ``torch.load(..., weights_only=True)``: a checkpoint is data,
never code.  Everything the engine writes is therefore made of tensors,
numbers, strings, lists, tuples and dicts only.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from harness.atomic import atomic_output
from harness.errors import ConfigError, DataError

__all__ = [
    "CHECKPOINT_FORMAT",
    "StateMatch",
    "atomic_save",
    "extract_state_dict",
    "load_matching",
    "match_state_dict",
    "read_checkpoint",
    "read_state_dict",
]

#: Marker stored in every training checkpoint the engine writes.
CHECKPOINT_FORMAT = "facebench-torch-checkpoint"
CHECKPOINT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`harness.atomic.atomic_output`: a reader
    (or a run resumed after a kill) sees the old file or the new one, never a torn one."""
    with atomic_output(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def read_checkpoint(path: str | Path) -> Any:
    """Load a file with ``weights_only=True`` onto the CPU, with clear errors."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"checkpoint {path} is a folder; give the weights file inside it (e.g. last.pt)")
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own text for a file it refuses suggests weights_only=False,
        # which would run whatever code the file holds: never relay it.
        raise DataError(
            f"checkpoint {path} is not a PyTorch weights file facebench can read: expected what "
            "torch.save writes from a state_dict or a facebench checkpoint (tensors, numbers, strings, "
            f"lists and dicts only; {_why(exc)})"
        ) from exc


def _why(exc: Exception) -> str:
    """What went wrong reading a checkpoint, in a few words of our own."""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return "this file is not one, or it holds other Python objects, which are never loaded because " \
               "loading them can run code"
    if isinstance(exc, EOFError):
        return "this file is empty or cut short"
    return "this file is not one"


def extract_state_dict(obj: Any, *, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The network weights inside a loaded checkpoint, and where they were found.

    Accepted: a facebench checkpoint (weights under ``"model"``), a bare
    state_dict, or a dict holding one under ``"net_state_dict"``,
    ``"state_dict"`` or ``"model_state_dict"``.  A ``"module."`` prefix (from
    DataParallel / DDP) is stripped.
    """
    where = "state_dict"
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in ("model", "net_state_dict", "state_dict", "model_state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and _is_state_dict(inner):
                obj, where = inner, f"[{key!r}]"
                break
        else:
            keys = ", ".join(repr(k) for k in list(obj)[:8])
            raise DataError(
                f"{source} holds no network weights: expected a state_dict, or one under "
                f"'model', 'net_state_dict' or 'state_dict'; its top-level keys are {keys}"
            )
    if not isinstance(obj, Mapping) or not _is_state_dict(obj):
        raise DataError(f"{source} is not a state_dict (got {type(obj).__name__})")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        where += " (stripped 'module.')"
    return state, where


def _is_state_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) for k in obj) and all(
        isinstance(v, torch.Tensor) for v in obj.values()
    )


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Network weights from a checkpoint file (see :func:`extract_state_dict`)."""
    return extract_state_dict(read_checkpoint(path), source=f"checkpoint {path}")


@dataclass
class StateMatch:
    """How a state_dict fits a model.

    :param matched: keys present in both with equal shapes.
    :param missing: model keys absent from the checkpoint.
    :param unexpected: checkpoint keys the model does not have.
    :param mismatched: (key, checkpoint shape, model shape) for shape conflicts.
    """

    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, limit: int = 10) -> str:
        """A readable, multi-line description of every difference."""
        lines = [
            f"{len(self.matched)} tensors match, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} with another shape"
        ]

        def block(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"  {title}:")
                lines.extend(f"    {s}" for s in items[:limit])
                if len(items) > limit:
                    lines.append(f"    … and {len(items) - limit} more")

        block("shape mismatches (key: checkpoint vs model)",
              [f"{k}: {tuple(c)} vs {tuple(m)}" for k, c, m in self.mismatched])
        block("missing from the checkpoint", self.missing)
        block("unexpected in the checkpoint", self.unexpected)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "matched": len(self.matched),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "mismatched": [
                {"key": k, "checkpoint": list(c), "model": list(m)} for k, c, m in self.mismatched
            ],
        }


def match_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> StateMatch:
    """Compare ``state`` with ``model.state_dict()`` key by key and shape by shape."""
    own = model.state_dict()
    out = StateMatch()
    for key, tensor in own.items():
        if key not in state:
            # BatchNorm's counter is bookkeeping, not a weight.
            if not key.endswith("num_batches_tracked"):
                out.missing.append(key)
        elif tuple(state[key].shape) != tuple(tensor.shape):
            out.mismatched.append((key, tuple(state[key].shape), tuple(tensor.shape)))
        else:
            out.matched.append(key)
    out.unexpected = [k for k in state if k not in own]
    return out


def load_matching(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, what: str,
                  allow_partial: bool) -> StateMatch:
    """Load ``state`` into ``model``.

    :param allow_partial: load the matching tensors and leave the rest; when
        False any difference is an error.
    :raises ConfigError: shapes conflict, nothing matches, or (strict) any
        key is missing or unexpected — the message lists them.
    """
    match = match_state_dict(model, state)
    if match.mismatched:
        raise ConfigError(
            f"{what} does not fit the model: tensors of another shape\n{match.summary()}\n"
            "Is it a checkpoint of a different backbone or embedding size?"
        )
    if not match.matched:
        raise ConfigError(f"{what} shares no tensor with the model\n{match.summary()}")
    if not allow_partial and not match.exact:
        raise ConfigError(f"{what} does not match the model exactly\n{match.summary()}")
    model.load_state_dict({k: state[k] for k in match.matched}, strict=False)
    return match
