"""Softmax cross-entropy over a linear classifier (the plain baseline).

``logits(x) = x W^T + b``; the loss is the mean cross-entropy.  The
classifier runs in float32 even under bf16 / fp16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facebench_plugins.losses._common import check_classes, check_inputs, full_precision
from facebench_plugins.losses.options import SoftmaxOptions

__all__ = ["SoftmaxLoss", "build_softmax"]


class SoftmaxLoss(nn.Module):
    """Linear classifier (C, D) + cross-entropy."""

    def __init__(self, embedding_size: int, num_classes: int, *, bias: bool = True,
                 name: str = "softmax"):
        super().__init__()
        check_classes(name, num_classes)
        self.name = name
        self.embedding_size = int(embedding_size)
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(embedding_size, num_classes, bias=bias)
        nn.init.normal_(self.classifier.weight, 0.0, 0.01)
        if bias:
            nn.init.zeros_(self.classifier.bias)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C) linear logits; ``labels`` is ignored."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = full_precision(embeddings)
            w = self.classifier.weight.to(x.dtype)
            b = None if self.classifier.bias is None else self.classifier.bias.to(x.dtype)
            return F.linear(x, w, b)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(self.name, embeddings, labels, embedding_size=self.embedding_size,
                     num_classes=self.num_classes)
        return F.cross_entropy(self.logits(embeddings), labels.long())


def build_softmax(opts: SoftmaxOptions, *, embedding_size: int, num_classes: int) -> SoftmaxLoss:
    return SoftmaxLoss(embedding_size, num_classes, bias=opts.bias)
