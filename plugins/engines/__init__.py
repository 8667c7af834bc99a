"""Built-in engines: specs only; implementations are imported when selected.

An engine trains and runs the components of one framework (training loop,
checkpoints, mixed precision, batched inference) so the core stays
framework-free.  This module must stay light: no torch import here.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import EngineSpec

from facebench_plugins.engines.options import TorchEngineOptions

__all__ = ["TorchEngineOptions", "register_engines"]


@hookimpl
def register_engines():
    return [
        EngineSpec(
            name="torch",
            summary="PyTorch training loop (SGD/AdamW, warm-up + cosine/step, AMP, "
            "atomic checkpoints, exact resume) and batched embedding.",
            framework="torch",
            factory="facebench_plugins.engines.torch_engine:build",
            options=TorchEngineOptions,
            # `harness export`: ONNX export of a built backbone (module:attr, imported on use)
            meta={"exporter": "facebench_plugins.engines._export"},
        )
    ]
