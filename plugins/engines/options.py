"""Options of the built-in engines (``-o torch.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.specs import check_range

__all__ = ["PRECISIONS", "TFEngineOptions", "TorchEngineOptions"]

#: the torch engine's ``precision`` choices (docs/precision.md)
PRECISIONS = ("fp32", "auto", "bf16")


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
        numerically coarser; off by default).  ``precision: bf16`` says the
        same for every device.
    :param precision: ``auto`` (the default): bf16 autocast + channels-last
        where bf16 trains faster than float32 (CUDA:
        ``torch.cuda.is_bf16_supported()``; CPU: oneDNN and AMX,
        ``amx_bf16`` -- ``avx512_bf16`` alone measured slower than float32,
        docs/precision.md), else as ``fp32``.  ``fp32``: full precision on
        the CPU (``cpu_bf16`` aside); on CUDA ``amp`` and ``channels_last``
        decide.  ``bf16``: bf16 autocast + channels-last on any device (slow
        where emulated).  Weights, optimizer state and the
        loss stay float32 in every case (docs/precision.md).
    :param compile: wrap the model in ``torch.compile`` for training (the
        checkpoints hold the plain model's weights); the first steps pay
        the compilation.
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
    precision: Literal["fp32", "auto", "bf16"] = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        check_range("torch.pk_k", self.pk_k, 1, 1024, integer=True)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if any(not 0.0 < m < 1.0 for m in self.step_milestones):
            raise ValueError(
                f"step_milestones are fractions of training in (0, 1), got {self.step_milestones}"
            )
        if not 0.0 < self.step_gamma <= 1.0:
            raise ValueError(f"step_gamma must be in (0, 1], got {self.step_gamma}")
        check_range("torch.threads", self.threads, 0, 1024, integer=True)
        if self.precision not in PRECISIONS:
            raise ValueError(f"torch.precision={self.precision!r}: expected one of {', '.join(PRECISIONS)} "
                             "(e.g. -o torch.precision=auto)")


@dataclass(frozen=True)
class TFEngineOptions:
    """Options of the ``tf`` engine (``-o tf.key=value``); the schedule's
    settings mean what they mean for the ``torch`` engine.

    :param pk_k: K, images per identity in a P x K batch (``pk`` sampler).
    :param momentum: SGD momentum (torch's rule: ``buf = momentum * buf + grad``).
    :param step_milestones: for ``scheduler: step``, fractions of the
        post-warm-up steps at which the learning rate is multiplied by
        ``step_gamma``.
    :param step_gamma: the factor applied at each milestone.
    :param threads: TensorFlow intra-op threads; 0 leaves TensorFlow's default
        (it must be set before TensorFlow first runs an op).
    :param deterministic: deterministic TensorFlow ops
        (``tf.config.experimental.enable_op_determinism``).
    :param precision: as the torch engine's: ``fp32`` (``amp`` / ``cpu_bf16``
        decide), ``auto``, the default (Keras ``mixed_bfloat16`` where bf16
        trains faster than float32: a GPU of compute capability 8+, an AMX
        CPU) or ``bf16`` (``mixed_bfloat16`` on any device).  The embedding
        head, the loss and every variable stay float32 (docs/tf.md).
    :param amp: on a GPU, Keras ``mixed_float16`` with dynamic loss scaling.
    :param cpu_bf16: on the CPU, ``mixed_bfloat16``.
    :param mirrored: with device ``auto``, train on every GPU (or every logical
        CPU device) with ``tf.distribute.MirroredStrategy`` when there are several.
    :param saved_model: write the trained backbone as a TensorFlow SavedModel to
        ``<run>/saved_model/`` when training ends.
    """

    pk_k: int = 4
    momentum: float = 0.9
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    step_gamma: float = 0.1
    threads: int = 0
    deterministic: bool = True
    precision: Literal["fp32", "auto", "bf16"] = "auto"
    amp: bool = True
    cpu_bf16: bool = False
    mirrored: bool = True
    saved_model: bool = True

    def __post_init__(self) -> None:
        check_range("tf.pk_k", self.pk_k, 1, 1024, integer=True)
        check_range("tf.threads", self.threads, 0, 1024, integer=True)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"tf.momentum must be in [0, 1), got {self.momentum}")
        if any(not 0.0 < m < 1.0 for m in self.step_milestones):
            raise ValueError(f"tf.step_milestones are fractions of training in (0, 1), got {self.step_milestones}")
        if not 0.0 < self.step_gamma <= 1.0:
            raise ValueError(f"tf.step_gamma must be in (0, 1], got {self.step_gamma}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"tf.precision={self.precision!r}: expected one of {', '.join(PRECISIONS)} "
                             "(e.g. -o tf.precision=bf16)")
