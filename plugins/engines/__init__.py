"""Built-in engines: specs only; implementations are imported when selected.

An engine trains and runs the components of one framework (training loop,
checkpoints, mixed precision, batched inference) so the core stays
framework-free.  This module must stay light: no torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hookspecs import hookimpl
from harness.specs import EngineSpec

__all__ = ["TorchEngineOptions", "register_engines"]


@dataclass(frozen=True)
class TorchEngineOptions:
    """Options of the ``torch`` engine (``-o torch.key=value``).

    :param pk_k: K, images per identity in a P x K batch (``pk`` sampler);
        P = batch_size / K.
    :param momentum: SGD momentum.
    :param amp: mixed precision on CUDA (bf16 where supported, else fp16
        with a gradient scaler).
    :param channels_last: channels-last memory format on CUDA.
    :param cpu_bf16: bf16 autocast on CPU (fast on AVX-512 bf16 CPUs, but
        numerically coarser; off by default).
    :param deterministic: deterministic algorithms where cheap (cuDNN
        deterministic, no benchmark mode, ``use_deterministic_algorithms``
        in warn-only mode).
    :param step_milestones: for ``scheduler: step``, the fractions of the
        post-warm-up steps at which the learning rate is multiplied by
        ``step_gamma``.
    :param step_gamma: the factor applied at each milestone.
    :param threads: torch intra-op threads; 0 leaves torch's default.
    """

    pk_k: int = 4
    momentum: float = 0.9
    amp: bool = True
    channels_last: bool = True
    cpu_bf16: bool = False
    deterministic: bool = True
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    step_gamma: float = 0.1
    threads: int = 0

    def __post_init__(self) -> None:
        if self.pk_k < 1:
            raise ValueError(f"pk_k must be >= 1, got {self.pk_k}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if any(not 0.0 < m < 1.0 for m in self.step_milestones):
            raise ValueError(
                f"step_milestones are fractions of training in (0, 1), got {self.step_milestones}"
            )
        if not 0.0 < self.step_gamma <= 1.0:
            raise ValueError(f"step_gamma must be in (0, 1], got {self.step_gamma}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


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
        )
    ]
