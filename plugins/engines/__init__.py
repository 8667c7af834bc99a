"""Built-in engines: specs only; implementations are imported when selected.

An engine trains and runs the components of one framework (training loop,
checkpoints, mixed precision, batched inference) so the core stays
framework-free.  This module must stay light: no torch import here.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import EngineSpec

from facebench_plugins.engines.options import TFEngineOptions, TorchEngineOptions

__all__ = ["TFEngineOptions", "TorchEngineOptions", "register_engines"]


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
        ),
        EngineSpec(
            name="tf",
            summary="TensorFlow 2 / Keras twins of the built-in backbones and losses (same names and "
            "options; `--engine tf`): SGD/AdamW, warm-up + cosine/step, atomic checkpoints, resume.",
            framework="tensorflow",
            factory="facebench_plugins.engines.tf_engine:build",
            options=TFEngineOptions,
            # what `--engine tf` can run: checked when the grid is expanded (no TensorFlow import)
            meta={"adapts": {
                "backbone": ("inception_resnet_v1", "lresnet100", "lresnet50", "mobilefacenet",
                             "resnet20", "resnet36"),
                "loss": ("am_softmax", "arcface", "center", "combined", "cosface", "softmax", "triplet"),
            }},
        ),
    ]
