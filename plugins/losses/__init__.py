"""Built-in losses: specs only; implementations are imported when selected.

==============  ==============  ==========================================
module          names           what
==============  ==============  ==========================================
``softmax``     softmax         linear classifier + cross-entropy
``center``      center          softmax + lam x center loss (Wen et al. 2016)
``triplet``     triplet         batch-hard triplet, euclidean or cosine
``margin``      arcface,        one parameterised margin softmax
                cosface,        s * (cos(m1 theta + m2) - m3) on the target
                am_softmax,
                combined
``partial_fc``  partial_fc      the margin softmax with its class centres
                                sharded across DDP ranks (Partial FC)
==============  ==============  ==========================================

Every factory is called as ``factory(options, embedding_size=D,
num_classes=C)`` and returns a module with ``forward(embeddings, labels) ->
scalar``; classifier losses also have ``logits(embeddings, labels=None)``
(margin-free, for accuracy).
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import LossSpec

from facebench_plugins.losses.options import (
    AMSoftmaxOptions,
    ArcFaceOptions,
    CenterLossOptions,
    CombinedMarginOptions,
    CosFaceOptions,
    PartialFCOptions,
    SoftmaxOptions,
    TripletOptions,
)

__all__ = ["register_losses", "specs"]

_MODULE = "facebench_plugins.losses"
_LICENSE = "Apache-2.0 (facebench implementation)"


def specs() -> list[LossSpec]:
    """The built-in loss specs (no torch import)."""
    return _classification_losses() + _margin_losses()


def _classification_losses() -> list[LossSpec]:
    """Softmax, center and triplet: losses over a linear classifier or none."""
    return [
        LossSpec(
            name="softmax",
            summary="Softmax cross-entropy over a linear classifier.",
            factory=f"{_MODULE}.softmax:build_softmax",
            framework="torch",
            options=SoftmaxOptions,
            paper="Taigman et al., DeepFace, CVPR 2014 (softmax-trained face embeddings)",
            license=_LICENSE,
            meta={"logits": "linear"},
        ),
        LossSpec(
            name="center",
            summary="Softmax + lam x center loss; centers move at their own rate alpha (Wen et al. 2016).",
            factory=f"{_MODULE}.center:build_center",
            framework="torch",
            options=CenterLossOptions,
            paper=(
                "Wen et al., A Discriminative Feature Learning Approach for Deep Face "
                "Recognition, ECCV 2016"
            ),
            license=_LICENSE,
            meta={"logits": "linear"},
        ),
        LossSpec(
            name="triplet",
            summary="Triplet loss with online batch-hard mining, euclidean or cosine distance.",
            factory=f"{_MODULE}.triplet:build_triplet",
            framework="torch",
            options=TripletOptions,
            paper=(
                "Schroff et al., FaceNet, CVPR 2015; Hermans et al., In Defense of the Triplet "
                "Loss for Person Re-Identification, 2017 (batch-hard)"
            ),
            license=_LICENSE,
            needs_classifier=False,
            sampler="pk",
            meta={"min_images_per_identity": 2},
        ),
    ]


def _margin_losses() -> list[LossSpec]:
    """Angular / cosine margin losses over normalised class centres."""
    return [
        LossSpec(
            name="arcface",
            summary="ArcFace additive angular margin: s*cos(theta+m); th/mm fallback past theta+m>pi.",
            factory=f"{_MODULE}.margin:build_arcface",
            framework="torch",
            options=ArcFaceOptions,
            paper=(
                "Deng et al., ArcFace: Additive Angular Margin Loss for Deep Face Recognition, "
                "CVPR 2019"
            ),
            license=_LICENSE,
            meta={"logits": "cosine", "margin": "(m1, m2, m3) = (1, m, 0)",
                  "fallback": "insightface th/mm: cos(theta) - m*sin(m) when theta + m > pi"},
        ),
        LossSpec(
            name="cosface",
            summary="CosFace large-margin cosine loss: s*(cos(theta)-m), s=64.",
            factory=f"{_MODULE}.margin:build_cosface",
            framework="torch",
            options=CosFaceOptions,
            paper="Wang et al., CosFace: Large Margin Cosine Loss for Deep Face Recognition, CVPR 2018",
            license=_LICENSE,
            meta={"logits": "cosine", "margin": "(m1, m2, m3) = (1, 0, m)"},
        ),
        LossSpec(
            name="am_softmax",
            summary="Additive-margin softmax: s*(cos(theta)-m), s=30 (same margin as cosface).",
            factory=f"{_MODULE}.margin:build_am_softmax",
            framework="torch",
            options=AMSoftmaxOptions,
            paper="Wang et al., Additive Margin Softmax for Face Verification, IEEE SPL 2018",
            license=_LICENSE,
            meta={"logits": "cosine", "margin": "(m1, m2, m3) = (1, 0, m)"},
        ),
        LossSpec(
            name="combined",
            summary=(
                "Combined margin s*(cos(m1*theta+m2)-m3): SphereFace (m1), ArcFace (m2), "
                "CosFace (m3) margins."
            ),
            factory=f"{_MODULE}.margin:build_combined",
            framework="torch",
            options=CombinedMarginOptions,
            paper=(
                "Deng et al., ArcFace, CVPR 2019 (combined margin, eq. 4); Liu et al., "
                "SphereFace, CVPR 2017 (multiplicative margin)"
            ),
            license=_LICENSE,
            meta={"logits": "cosine", "margin": "(m1, m2, m3)",
                  "fallback": "m1 = 1: th/mm as arcface; m1 > 1: SphereFace's (-1)^k cos - 2k"},
        ),
        LossSpec(
            name="partial_fc",
            summary=(
                "Margin softmax (ArcFace by default) with the class centres sharded across DDP "
                "ranks; optional negative-centre sampling."
            ),
            factory=f"{_MODULE}.partial_fc:build_partial_fc",
            framework="torch",
            options=PartialFCOptions,
            paper=(
                "An et al., Partial FC: Training 10 Million Identities on a Single Machine, "
                "ICCV Workshops 2021; Deng et al., ArcFace, CVPR 2019"
            ),
            license=_LICENSE,
            meta={"logits": "cosine", "margin": "(m1, m2, m3) = (1, 0.5, 0) by default",
                  "sharded": "C / world centres per rank under torchrun; exact when sample_rate = 1"},
        ),
    ]


@hookimpl
def register_losses():
    return specs()
