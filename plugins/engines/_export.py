"""ONNX export of a torch backbone (``harness export``), the torch side.

:func:`export_onnx` traces a built backbone with the classic TorchScript-based
exporter (``torch.onnx.export(..., dynamo=False)``: the torch.export-based one
needs ``onnxscript``, which facebench does not require) at :data:`OPSET`, with
a symbolic batch dimension, and writes the preprocessing the network expects
into the model's ``metadata_props`` under ``facebench.*`` keys (see
:data:`METADATA_KEYS`), so ``--recognizer onnx -o onnx.model=FILE`` applies it
by default.  The graph computes one embedding per image; flip fusion is
stated in the metadata and applied by the runner, as for the torch path.

:func:`checkpoint_info` reads what a facebench training checkpoint says about
the backbone it was trained as (name, input and embedding size).

The command reaches this module through the ``exporter`` entry of the torch
engine spec's ``meta``; nothing here is imported by the core.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from harness.errors import DataError

from ._checkpoint import CHECKPOINT_FORMAT, read_checkpoint

__all__ = ["METADATA_KEYS", "OPSET", "checkpoint_info", "export_onnx", "forward"]

#: the ONNX opset written (torch 2.x's TorchScript exporter supports it fully;
#: onnxruntime >= 1.14 runs it)
OPSET = 17
#: graph input / output names
INPUT_NAME, OUTPUT_NAME = "input", "embedding"
#: the preprocessing keys written (each as ``facebench.<key>``), all strings
METADATA_KEYS = ("input_size", "alignment", "color", "layout", "scale", "mean", "std", "flip",
                 "embedding_size", "weights_sha256", "weights", "backbone", "options", "opset", "version")


def checkpoint_info(path: str | Path) -> dict[str, Any]:
    """What a weights file says about itself (read with ``weights_only=True``).

    :returns: ``{"facebench": bool, "backbone": {"name", "input_size", "embedding_size"} | None}``.
    :raises DataError: the file is not a PyTorch weights file.
    """
    ck = read_checkpoint(path)
    ours = isinstance(ck, Mapping) and ck.get("format") == CHECKPOINT_FORMAT
    bb = ck.get("backbone_spec") if ours else None
    return {"facebench": ours, "backbone": dict(bb) if isinstance(bb, Mapping) else None}


def forward(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """float32 (N, 3, H, W) -> the model's float32 (N, D) output on the CPU, eval mode."""
    model.eval()
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).float().numpy()


def export_onnx(model: nn.Module, *, input_size: tuple[int, int], metadata: Mapping[str, Any],
                opset: int = OPSET) -> bytes:
    """The serialized ONNX model of ``model`` (eval mode, float32, CPU) with a dynamic batch.

    :param input_size: (height, width) traced; the batch dimension is the symbol ``batch``.
    :param metadata: written as ``metadata_props`` ``facebench.<key>`` = ``str(value)``
        (tuples and lists as comma lists).
    :raises DataError: the exporter or the ONNX checker rejects the network.
    """
    import onnx

    model = model.float().cpu().eval()
    h, w = int(input_size[0]), int(input_size[1])
    example = torch.zeros(2, 3, h, w)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the "legacy exporter" notice: chosen on purpose (see above)
            torch.onnx.export(
                model, (example,), buf, dynamo=False, opset_version=opset, do_constant_folding=True,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )
        proto = onnx.load_from_string(buf.getvalue())
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one message
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DataError(f"torch.onnx.export (opset {opset}) failed for this network: {first}") from exc
    from harness import __version__

    proto.producer_name, proto.producer_version = "facebench", __version__
    proto.doc_string = "face-embedding backbone exported by `harness export`; preprocessing in facebench.* metadata"
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"facebench.{key}", _text(value)
    return proto.SerializeToString()


def _text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
