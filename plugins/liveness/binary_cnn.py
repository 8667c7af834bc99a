"""``binary_cnn``: a small VGG-style CNN with binary (live / attack) supervision.

Four blocks of 3x3 conv + BatchNorm + ReLU (width w, 2w, 4w, 8w), max-pooled
between blocks, global average pooling, dropout and one logit.  Trained with
Adam and class-balanced binary cross-entropy; the score is the logit of
P(bona fide).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from facebench_plugins.liveness import BinaryCnnOptions
from facebench_plugins.liveness._torch_common import TorchLiveness, conv_bn_relu

__all__ = ["BinaryCnn", "BinaryCnnNet", "build"]


class BinaryCnnNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(3, w), conv_bn_relu(w, w), nn.MaxPool2d(2),
            conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            conv_bn_relu(2 * w, 4 * w), nn.MaxPool2d(2),
            conv_bn_relu(4 * w, 8 * w),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(8 * w, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


class BinaryCnn(TorchLiveness):
    kind = "binary_cnn"

    def make_net(self) -> nn.Module:
        return BinaryCnnNet(self.options.width)

    def batch_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(out, y, pos_weight=self.pos_weight.to(out.device))

    def batch_score(self, out: torch.Tensor) -> torch.Tensor:
        return out


def build(options: BinaryCnnOptions | None = None, **_: Any) -> BinaryCnn:
    return BinaryCnn(options or BinaryCnnOptions())
