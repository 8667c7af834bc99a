"""One parameterised angular-margin softmax loss: arcface, cosface, am_softmax, combined.

Embeddings x and class weights W are L2-normalised, so the logits are the
cosines ``cos(theta_j)``.  The target class's cosine is replaced by

    psi(theta) = cos(m1 * theta + m2) - m3

and the cross-entropy of ``s * logits`` is returned.  ``m1`` is
SphereFace's multiplicative angular margin, ``m2`` ArcFace's additive
angular margin and ``m3`` CosFace's / AM-Softmax's additive cosine margin
(Deng et al. 2019, eq. 4: "combined margin").  Presets:

===============  ====================  ====
name             (m1, m2, m3)          s
===============  ====================  ====
arcface          (1, m, 0)             64
cosface          (1, 0, m)             64
am_softmax       (1, 0, m)             30
combined         (m1, m2, m3)          64
===============  ====================  ====

Numerical safety, and which formulation is used:

* ``m1 == 1`` (ArcFace / CosFace / the default combined margin): ``cos(theta
  + m2)`` is computed as ``cos(theta) cos(m2) - sin(theta) sin(m2)`` with
  ``sin(theta) = sqrt(max(1 - cos^2, 1e-12))`` — no ``acos``, whose gradient is
  infinite at cos = +-1.  When ``theta + m2 > pi`` (``cos(theta) <= cos(pi -
  m2)``) ``cos(theta + m2)`` stops decreasing in theta and would *reward*
  pushing the sample further from its class; there we use insightface's
  "th / mm" fallback ``cos(theta) - m2 sin(m2)`` (no easy margin), which
  keeps the target logit decreasing in theta.
* ``m1 > 1`` (SphereFace-style): ``theta = acos`` of the cosine clamped to
  ``[-1 + 1e-7, 1 - 1e-7]`` and SphereFace's monotone extension ``psi =
  (-1)^k cos(m1 theta + m2) - 2k``, ``k = floor((m1 theta + m2) / pi)``,
  which equals ``cos(m1 theta + m2)`` where that is still decreasing and
  continues it downwards beyond.  The features are normalised (as in
  OpenSphere's SphereFace-R / NormFace), not SphereFace's raw-norm logits.

The head runs in float32 even under bf16/fp16 autocast: margins of 0.35 are
below bf16's resolution near cos = 1.

``logits(x)`` gives the margin-free ``s * cos(theta)`` used for training
accuracy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facebench_plugins.losses._common import check_classes, check_inputs, full_precision
from facebench_plugins.losses.options import (
    AMSoftmaxOptions,
    ArcFaceOptions,
    CombinedMarginOptions,
    CosFaceOptions,
)

__all__ = [
    "MarginSoftmaxLoss",
    "build_am_softmax",
    "build_arcface",
    "build_combined",
    "build_cosface",
    "margin_target",
]

_SIN_EPS = 1e-12
_ACOS_EPS = 1e-7


def margin_target(cos: torch.Tensor, m1: float, m2: float, m3: float) -> torch.Tensor:
    """psi(theta) for target cosines ``cos`` (any shape), as described in the module docs."""
    if m1 == 1.0:
        if m2 == 0.0:
            out = cos
        else:
            sin = torch.sqrt(torch.clamp(1.0 - cos * cos, min=_SIN_EPS))
            cos_theta_m = cos * math.cos(m2) - sin * math.sin(m2)
            threshold = math.cos(math.pi - m2)  # theta + m2 = pi
            out = torch.where(cos > threshold, cos_theta_m, cos - m2 * math.sin(m2))
    else:
        theta = torch.acos(torch.clamp(cos, -1.0 + _ACOS_EPS, 1.0 - _ACOS_EPS))
        phi = m1 * theta + m2
        k = torch.floor(phi / math.pi).detach()
        sign = 1.0 - 2.0 * torch.remainder(k, 2.0)  # (-1)^k
        out = sign * torch.cos(phi) - 2.0 * k
    return out - m3 if m3 else out


class MarginSoftmaxLoss(nn.Module):
    """Cross-entropy over ``s``-scaled cosine logits with a (m1, m2, m3) target margin.

    :param embedding_size: D.
    :param num_classes: C; the module owns the (C, D) class weights.
    """

    def __init__(self, embedding_size: int, num_classes: int, *, s: float, m1: float = 1.0,
                 m2: float = 0.0, m3: float = 0.0, name: str = "margin"):
        super().__init__()
        check_classes(name, num_classes)
        self.name = name
        self.embedding_size = int(embedding_size)
        self.num_classes = int(num_classes)
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.normal_(self.weight, 0.0, 0.01)

    def extra_repr(self) -> str:
        return (f"{self.name}: D={self.embedding_size}, C={self.num_classes}, s={self.s}, "
                f"m1={self.m1}, m2={self.m2}, m3={self.m3}")

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(N, C) cosines between the embeddings and the class weights, in float32 or better."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(full_precision(embeddings), dim=1)
            w = F.normalize(full_precision(self.weight).to(x.dtype), dim=1)
            return F.linear(x, w).clamp(-1.0, 1.0)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Margin-free logits ``s * cos(theta)`` (N, C), for accuracy; ``labels`` is ignored."""
        return self.s * self.cosine(embeddings)

    def margin_logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training logits: ``s * cos`` with the target entry replaced by ``s * psi``."""
        check_inputs(self.name, embeddings, labels, embedding_size=self.embedding_size,
                     num_classes=self.num_classes)
        cos = self.cosine(embeddings)
        index = labels.long().view(-1, 1)
        target = margin_target(cos.gather(1, index), self.m1, self.m2, self.m3)
        return self.s * cos.scatter(1, index, target)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.margin_logits(embeddings, labels), labels.long())


def build_arcface(opts: ArcFaceOptions, *, embedding_size: int, num_classes: int) -> MarginSoftmaxLoss:
    return MarginSoftmaxLoss(embedding_size, num_classes, s=opts.s, m2=opts.m, name="arcface")


def build_cosface(opts: CosFaceOptions, *, embedding_size: int, num_classes: int) -> MarginSoftmaxLoss:
    return MarginSoftmaxLoss(embedding_size, num_classes, s=opts.s, m3=opts.m, name="cosface")


def build_am_softmax(opts: AMSoftmaxOptions, *, embedding_size: int, num_classes: int) -> MarginSoftmaxLoss:
    return MarginSoftmaxLoss(embedding_size, num_classes, s=opts.s, m3=opts.m, name="am_softmax")


def build_combined(opts: CombinedMarginOptions, *, embedding_size: int,
                   num_classes: int) -> MarginSoftmaxLoss:
    return MarginSoftmaxLoss(embedding_size, num_classes, s=opts.s, m1=opts.m1, m2=opts.m2,
                             m3=opts.m3, name="combined")
