"""Count a network's parameters and multiply-accumulates (MACs).

The counter runs one forward pass of a single image and records, through
forward hooks, the MACs of every convolution and fully connected layer — the
convention of the papers we compare against (ArcFace's IR-50 "6.3 G",
MobileFaceNet's "221 M MAdds").  BatchNorm, activations, pooling and residual
additions are not counted: they are memory-bound and a fraction of a percent
of the total.

Used by the backbone tests (measured counts must equal the ``params`` and
``macs`` metadata of each spec) and by ``benchmarks/bench_backbones.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Profile", "count_params", "profile"]


@dataclass(frozen=True)
class Profile:
    """Size of a network at one input size.

    :param params: number of parameters (trainable or not: frozen BN scales count).
    :param macs: multiply-accumulates of one forward pass of one image.
    :param input_size: (height, width) measured at.
    :param output_shape: shape of the output for one image (``(D,)`` for a backbone).
    """

    params: int
    macs: int
    input_size: tuple[int, int]
    output_shape: tuple[int, ...] = ()

    @property
    def gflops_train(self) -> float:
        """GFLOP of one training step per image: 2 FLOP per MAC, x3 for fwd + bwd."""
        return 2.0 * 3.0 * self.macs / 1e9


def count_params(model: nn.Module) -> int:
    """Every parameter element of ``model`` (shared tensors once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    # every output element is a dot product over (C_in / groups) * kH * kW inputs
    kh, kw = module.kernel_size
    per_output = (module.in_channels // module.groups) * kh * kw
    return int(output[0].numel()) * per_output


def _linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    return int(output[0].numel()) * module.in_features


def profile(model: nn.Module, input_size: tuple[int, int]) -> Profile:
    """Parameters and per-image MACs of ``model`` at ``input_size`` (H, W).

    One forward pass of a batch of 2 random images in eval mode (2, not 1,
    so a training-mode BatchNorm1d would also accept it) under ``no_grad``;
    the model's mode is restored afterwards.
    """
    total = [0]

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            total[0] += _conv_macs(module, output)
        elif isinstance(module, nn.Linear):
            total[0] += _linear_macs(module, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(2, 3, int(input_size[0]), int(input_size[1]))
            out = model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    # each hook counted one image (``output[0]``) per call
    return Profile(
        params=count_params(model),
        macs=total[0],
        input_size=(int(input_size[0]), int(input_size[1])),
        output_shape=tuple(out.shape[1:]),
    )
