"""Options of the built-in engines (``-o torch.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import check_range

__all__ = ["TFEngineOptions", "TorchEngineOptions"]


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
    """

    pk_k: int = 4
    momentum: float = 0.9
    step_milestones: tuple[float, ...] = (0.5, 0.75)
    step_gamma: float = 0.1
    threads: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        check_range("tf.pk_k", self.pk_k, 1, 1024, integer=True)
        check_range("tf.threads", self.threads, 0, 1024, integer=True)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"tf.momentum must be in [0, 1), got {self.momentum}")
        if any(not 0.0 < m < 1.0 for m in self.step_milestones):
            raise ValueError(f"tf.step_milestones are fractions of training in (0, 1), got {self.step_milestones}")
        if not 0.0 < self.step_gamma <= 1.0:
            raise ValueError(f"tf.step_gamma must be in (0, 1], got {self.step_gamma}")
