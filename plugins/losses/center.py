"""Softmax + center loss (Wen et al., "A Discriminative Feature Learning
Approach for Deep Face Recognition", ECCV 2016).

    L = L_softmax + lam * L_C,   L_C = 1/(2N) * sum_i ||x_i - c_{y_i}||^2

(the mean over the mini-batch, as in the authors' Caffe layer).  The centers
``c_j`` are a buffer, not optimiser parameters: after each training forward
pass they move by the paper's rule (Algorithm 1, eq. 4)

    delta_c_j = sum_i [y_i = j] (c_j - x_i) / (1 + sum_i [y_i = j])
    c_j      <- c_j - alpha * delta_c_j

with their own rate ``alpha``, using the embeddings of the same batch (the
loss itself uses the centers as they were before the update).  Under
``torch.distributed`` the sums are all-reduced, so every rank keeps the same
centers.  In eval mode, or with autograd disabled, the centers stay put.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facebench_plugins.losses._common import check_inputs, full_precision
from facebench_plugins.losses.options import CenterLossOptions
from facebench_plugins.losses.softmax import SoftmaxLoss

__all__ = ["CenterLoss", "build_center"]


class CenterLoss(SoftmaxLoss):
    """Softmax classifier + ``lam`` x center loss with centers updated at rate ``alpha``."""

    centers: torch.Tensor

    def __init__(self, embedding_size: int, num_classes: int, *, lam: float = 0.003,
                 alpha: float = 0.5, bias: bool = True):
        super().__init__(embedding_size, num_classes, bias=bias, name="center")
        self.lam = float(lam)
        self.alpha = float(alpha)
        self.register_buffer("centers", torch.zeros(num_classes, embedding_size))

    def extra_repr(self) -> str:
        return f"lam={self.lam}, alpha={self.alpha}"

    def center_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_C = 1/(2N) sum_i ||x_i - c_{y_i}||^2 against the current centers."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = full_precision(embeddings)
            c = self.centers.to(x.dtype).index_select(0, labels.long())
            return 0.5 * (x - c).pow(2).sum(dim=1).mean()

    @torch.no_grad()
    def update_centers(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """One step of the paper's center update with the batch ``embeddings``."""
        x = embeddings.detach().to(self.centers.dtype)
        idx = labels.long()
        # sum_i [y_i = j] (c_j - x_i) = count_j * c_j - sum_{i: y_i = j} x_i
        sums = torch.zeros_like(self.centers).index_add_(0, idx, x)
        counts = torch.zeros(self.num_classes, dtype=self.centers.dtype, device=x.device)
        counts.index_add_(0, idx, torch.ones_like(idx, dtype=self.centers.dtype))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(counts)
        delta = (counts[:, None] * self.centers - sums) / (1.0 + counts[:, None])
        self.centers.sub_(self.alpha * delta)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(self.name, embeddings, labels, embedding_size=self.embedding_size,
                     num_classes=self.num_classes)
        softmax = F.cross_entropy(self.logits(embeddings), labels.long())
        loss = softmax + self.lam * self.center_loss(embeddings, labels)
        if self.training and torch.is_grad_enabled():
            self.update_centers(embeddings, labels)
        return loss


def build_center(opts: CenterLossOptions, *, embedding_size: int, num_classes: int) -> CenterLoss:
    return CenterLoss(embedding_size, num_classes, lam=opts.lam, alpha=opts.alpha, bias=opts.bias)
