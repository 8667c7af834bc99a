"""Load published checkpoints into facebench's backbones (``-o <backbone>.weights=PATH``).

Two foreign layouts are mapped key by key onto facebench's modules; the
networks compute the same function, only the module names differ:

* insightface arcface_torch ``iresnet50`` / ``iresnet100`` (``backbone.pth``)
  into ``lresnet50`` / ``lresnet100``: ``conv1, bn1, prelu`` -> ``stem.0..2``;
  ``layer{i}.{j}.{bn1, conv1, bn2, prelu, conv2, bn3}`` ->
  ``stages.{i-1}.{j}.body.0..5``; ``downsample.{0,1}`` -> ``shortcut.{0,1}``;
  ``bn2`` (after layer4) -> ``bn``; ``fc`` and ``features`` keep their names.
* facenet-pytorch ``InceptionResnetV1`` into ``inception_resnet_v1``:
  ``conv2d_1a, 2a, 2b, 3b, 4a, 4b`` -> ``stem.0, 1, 2, 4, 5, 6``;
  ``BasicConv2d.{conv, bn}`` -> ``.0, .1``; ``branch{k}`` -> ``branches.{k}``;
  a residual block's ``conv2d`` -> ``project``; ``last_linear`` / ``last_bn``
  keep their names.  The classifier ``logits.*`` is not part of the embedding
  network and is dropped.  facenet-pytorch L2-normalises its output in
  ``forward``; facebench leaves that to the evaluation (cosine), so the
  embeddings agree up to that normalisation.

A checkpoint already in facebench's own names loads as is.  The state dict
may sit under ``state_dict`` / ``model`` / ``net_state_dict`` /
``model_state_dict`` at any depth, and its keys may carry one or more
``module.`` prefixes (DataParallel / DDP).  Files are read with
``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from harness.errors import ConfigError, DataError

from facebench_plugins.engines._checkpoint import read_checkpoint

__all__ = ["facenet_key", "find_state_dict", "iresnet_key", "load_published"]

_WRAPPERS = ("state_dict", "model", "net_state_dict", "model_state_dict", "backbone")
_MAX_DEPTH = 4

# ------------------------------------------------------------ arcface_torch
_IRES_BLOCK = {"bn1": "body.0", "conv1": "body.1", "bn2": "body.2", "prelu": "body.3",
               "conv2": "body.4", "bn3": "body.5", "downsample": "shortcut"}
_IRES_TOP = {"conv1": "stem.0", "bn1": "stem.1", "prelu": "stem.2", "bn2": "bn", "fc": "fc",
             "features": "features"}
_IRES_LAYER = re.compile(r"layer([1-4])\.(\d+)\.(\w+)\.(.+)")


def iresnet_key(key: str) -> str | None:
    """arcface_torch ``iresnet`` key -> facebench ``LResNet`` key (None: no counterpart)."""
    m = _IRES_LAYER.fullmatch(key)
    if m:
        stage, unit, part, rest = m.groups()
        if part not in _IRES_BLOCK:
            return None
        return f"stages.{int(stage) - 1}.{unit}.{_IRES_BLOCK[part]}.{rest}"
    head, _, rest = key.partition(".")
    return f"{_IRES_TOP[head]}.{rest}" if head in _IRES_TOP and rest else None


# ----------------------------------------------------------- facenet-pytorch
_FACENET_STEM = {"conv2d_1a": "stem.0", "conv2d_2a": "stem.1", "conv2d_2b": "stem.2",
                 "conv2d_3b": "stem.4", "conv2d_4a": "stem.5", "conv2d_4b": "stem.6"}
_FACENET_BLOCKS = ("repeat_1", "repeat_2", "repeat_3", "mixed_6a", "mixed_7a", "block8")
_FACENET_HEAD = ("last_linear", "last_bn")


def facenet_key(key: str) -> str | None:
    """facenet-pytorch ``InceptionResnetV1`` key -> facebench key (None: no counterpart)."""
    parts = key.split(".")
    head = parts[0]
    if head in _FACENET_HEAD:
        return key
    if head in _FACENET_STEM:
        out = _FACENET_STEM[head].split(".")
    elif head in _FACENET_BLOCKS:
        out = [head]
    else:
        return None
    for tok in parts[1:]:
        if tok.startswith("branch") and tok[6:].isdigit():
            out += ["branches", tok[6:]]
        elif tok == "conv2d":
            out.append("project")
        elif tok == "conv":
            out.append("0")
        elif tok == "bn":
            out.append("1")
        else:
            out.append(tok)
    return ".".join(out)


#: classifier heads that are not part of the embedding network
_DROPPED = {"facenet": ("logits.",), "iresnet": ()}
MAPPERS: Mapping[str, Callable[[str], str | None]] = {"iresnet": iresnet_key, "facenet": facenet_key}


# ------------------------------------------------------------------ loading
def _is_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def find_state_dict(obj: Any, depth: int = 0) -> tuple[dict[str, torch.Tensor], str] | None:
    """The state dict in ``obj`` (itself, or under a wrapper key at any depth) and its path."""
    if _is_state(obj):
        state = dict(obj)
        while state and all(k.startswith("module.") for k in state):
            state = {k[len("module."):]: v for k, v in state.items()}
        return state, ""
    if not isinstance(obj, Mapping) or depth >= _MAX_DEPTH:
        return None
    for key in _WRAPPERS:
        if key in obj:
            found = find_state_dict(obj[key], depth + 1)
            if found is not None:
                return found[0], f"[{key!r}]" + found[1]
    return None


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def _translate(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], family: str,
               where: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Facebench-named tensors and, for messages, facebench key -> checkpoint key."""
    if all(k in state for k in own if not k.endswith("num_batches_tracked")):
        return state, {k: k for k in state}  # facebench's own names
    mapper, out, origin = MAPPERS[family], {}, {}
    for key, tensor in state.items():
        if key.startswith(_DROPPED[family]):
            continue
        new = mapper(key)
        if new is None or new not in own:
            raise ConfigError(
                f"{where}: checkpoint key {key!r} {_shape(tensor)} has no counterpart in the model "
                f"(expected a {family} state dict{'' if new is None else f'; it maps to {new!r}'})"
            )
        out[new], origin[new] = tensor, key
    return out, origin


def load_published(model: nn.Module, path: str | Path, *, family: str, option: str) -> dict[str, Any]:
    """Load a published (or facebench) checkpoint into ``model`` exactly; returns what was done.

    :param family: ``iresnet`` or ``facenet`` (the foreign layout to expect).
    :param option: the ``-o`` option that named the file, for messages.
    :raises ConfigError: the file is missing, or the first key or shape that differs.
    :raises DataError: the file holds no state dict.
    """
    path = Path(path).expanduser()
    where = f"{option}={path}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file; pass the path of a state dict (.pth / .pt)")
    found = find_state_dict(read_checkpoint(path))
    if found is None:
        raise DataError(f"{where}: holds no state dict (looked at the top level and under {', '.join(_WRAPPERS)})")
    state, inside = found
    own = model.state_dict()
    mapped, origin = _translate(state, own, family, where)
    for key, tensor in own.items():
        if key not in mapped:
            if key.endswith("num_batches_tracked"):
                mapped[key] = tensor
                continue
            raise ConfigError(f"{where}: the checkpoint has no tensor for {key!r} {_shape(tensor)}")
        if mapped[key].shape != tensor.shape:
            raise ConfigError(
                f"{where}: checkpoint key {origin[key]!r} has shape {_shape(mapped[key])}, the model expects "
                f"{_shape(tensor)} for {key!r} (another depth, embedding or input size?)"
            )
    extra = next((k for k in mapped if k not in own), None)
    if extra is not None:
        raise ConfigError(f"{where}: checkpoint key {origin.get(extra, extra)!r} has no counterpart in the model")
    model.load_state_dict(mapped, strict=True)
    model.eval()
    return {"path": str(path), "inside": inside or "top level",
            "layout": "facebench" if all(origin.get(k) == k for k in origin) else family,
            "tensors": len(origin)}
