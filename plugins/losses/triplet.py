"""Triplet loss with online batch-hard mining.

Schroff et al., "FaceNet", CVPR 2015 (the triplet loss on the unit
hypersphere) with the batch-hard mining of Hermans et al., "In Defense of
the Triplet Loss for Person Re-Identification", 2017: in a P x K batch (P
identities, K images each — the ``pk`` sampler), every sample is an anchor;
its hardest positive is the farthest sample of its identity, its hardest
negative the nearest sample of another identity, and

    L = mean over anchors of max(0, d(a, p_hard) - d(a, n_hard) + margin).

Distances are plain (not squared) euclidean distances — on L2-normalised
embeddings unless ``normalize=false`` — or cosine distances ``1 - cos``.
Anchors with no positive (K = 1 for their identity) or no negative are left
out; a batch with no usable anchor is an error (use the ``pk`` sampler with
K >= 2).  The loss owns no parameters and has no ``logits``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facebench_plugins.losses._common import LossInputError, check_inputs, full_precision
from facebench_plugins.losses.options import TripletOptions

__all__ = ["BatchHardTripletLoss", "build_triplet", "pairwise_distance"]


def pairwise_distance(x: torch.Tensor, distance: str, normalize: bool = True) -> torch.Tensor:
    """(N, N) distances between the rows of ``x``.

    Euclidean distances go through a clamped square root: the gradient is
    zero, not infinite, for coincident points.
    """
    if distance == "cosine":
        x = F.normalize(x, dim=1)
        return 1.0 - x @ x.T
    if distance != "euclidean":
        raise LossInputError(f"triplet: unknown distance {distance!r}; expected euclidean or cosine")
    if normalize:
        x = F.normalize(x, dim=1)
    sq = (x * x).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    return torch.sqrt(torch.clamp(d2, min=1e-12))


class BatchHardTripletLoss(nn.Module):
    """Batch-hard triplet loss; see the module docs."""

    def __init__(self, embedding_size: int, *, margin: float = 0.2, distance: str = "euclidean",
                 normalize: bool = True):
        super().__init__()
        self.name = "triplet"
        self.embedding_size = int(embedding_size)
        self.margin = float(margin)
        self.distance = distance
        self.normalize = bool(normalize)
        #: fraction of anchors with a positive loss in the last batch (a 0-d tensor; a
        #: training signal: it falls as the embedding separates identities)
        self.last_active_fraction: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance}, normalize={self.normalize}"

    def hardest(self, embeddings: torch.Tensor, labels: torch.Tensor):
        """(d(a, hardest positive), d(a, hardest negative), usable-anchor mask), each (N,)."""
        d = pairwise_distance(embeddings, self.distance, self.normalize)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos_mask = same & ~eye
        neg_mask = ~same
        # the farthest positive: non-positives masked to -inf; the nearest negative: non-negatives to +inf
        d_pos = d.masked_fill(~pos_mask, float("-inf")).max(dim=1).values
        d_neg = d.masked_fill(~neg_mask, float("inf")).min(dim=1).values
        valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
        return d_pos, d_neg, valid

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(self.name, embeddings, labels, embedding_size=self.embedding_size)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = full_precision(embeddings)
            d_pos, d_neg, valid = self.hardest(x, labels)
            if not bool(valid.any()):
                raise LossInputError(
                    "triplet: no anchor in this batch has both a positive (same identity) and a "
                    f"negative (another identity); labels={labels.tolist()[:16]}. Train triplet "
                    "with the 'pk' sampler, K >= 2 images per identity and P >= 2 identities."
                )
            per_anchor = F.relu(d_pos[valid] - d_neg[valid] + self.margin)
            self.last_active_fraction = (per_anchor.detach() > 0).float().mean()
            return per_anchor.mean()


def build_triplet(opts: TripletOptions, *, embedding_size: int,
                  num_classes: int | None = None) -> BatchHardTripletLoss:
    """``num_classes`` is accepted (the trainer passes it to every loss) and unused."""
    return BatchHardTripletLoss(embedding_size, margin=opts.margin, distance=opts.distance,
                                normalize=opts.normalize)
