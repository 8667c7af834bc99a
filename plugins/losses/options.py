"""Options of the built-in losses (``-o <loss>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no torch here.
Each class validates itself and raises :class:`harness.specs.OptionError`
naming the option and the values it accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from harness._values import short_repr
from harness.specs import OptionError, check_range

__all__ = [
    "AMSoftmaxOptions",
    "ArcFaceOptions",
    "CenterLossOptions",
    "CombinedMarginOptions",
    "CosFaceOptions",
    "PartialFCOptions",
    "SoftmaxOptions",
    "TripletOptions",
]


#: The largest logit scale ``s`` accepted (papers use 30-64; far above it the logits overflow).
MAX_SCALE = 1024.0
#: The largest loss weight or distance margin accepted.
MAX_WEIGHT = 10_000.0


def _positive(name: str, value: float) -> None:
    check_range(name, value, 0.0, MAX_SCALE, low_open=True)


def _in_range(name: str, value: float, low: float, high: float, what: str) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool)) or not low <= value < high:
        raise OptionError(f"{name}={short_repr(value)}: expected {what}")


@dataclass(frozen=True)
class SoftmaxOptions:
    """Softmax cross-entropy over a linear classifier.

    :param bias: the classifier has a bias term.
    """

    bias: bool = True


@dataclass(frozen=True)
class CenterLossOptions:
    """Softmax + ``lam`` x center loss (Wen et al. 2016).

    :param lam: weight lambda of the center term (the paper's face model: 0.003).
    :param alpha: center update rate alpha in (0, 1] (the paper: 0.5); the
        centers are updated by the rule of the paper, not by the optimiser.
    :param bias: the softmax classifier has a bias term.
    """

    lam: float = 0.003
    alpha: float = 0.5
    bias: bool = True

    def __post_init__(self) -> None:
        _in_range("center.lam", self.lam, 0.0, MAX_WEIGHT, f"a number in [0, {MAX_WEIGHT:g})")
        if isinstance(self.alpha, bool) or not (isinstance(self.alpha, (int, float)) and 0.0 < self.alpha <= 1.0):
            raise OptionError(f"center.alpha={short_repr(self.alpha)}: expected a rate in (0, 1]")


@dataclass(frozen=True)
class TripletOptions:
    """Triplet loss with online batch-hard mining (Hermans et al. 2017).

    :param margin: required gap between the hardest negative and the hardest
        positive distance of each anchor.
    :param distance: ``euclidean`` (on L2-normalised embeddings when
        ``normalize``) or ``cosine`` (1 - cosine similarity).
    :param normalize: L2-normalise embeddings before the euclidean distance
        (FaceNet's unit hypersphere); cosine distance always normalises.
    """

    margin: float = 0.2
    distance: Literal["euclidean", "cosine"] = "euclidean"
    normalize: bool = True

    def __post_init__(self) -> None:
        _in_range("triplet.margin", self.margin, 0.0, MAX_WEIGHT, f"a number in [0, {MAX_WEIGHT:g})")
        if self.distance not in ("euclidean", "cosine"):
            raise OptionError(
                f"triplet.distance={short_repr(self.distance)}: expected 'euclidean' or 'cosine'"
            )


def _check_scale_margin(name: str, s: float, m: float, m_high: float, what: str) -> None:
    _positive(f"{name}.s", s)
    _in_range(f"{name}.m", m, 0.0, m_high, what)


@dataclass(frozen=True)
class ArcFaceOptions:
    """ArcFace: target logit s * cos(theta + m).

    :param s: scale of the cosine logits (64 in the paper).
    :param m: additive angular margin in radians (0.5 in the paper).
    """

    s: float = 64.0
    m: float = 0.5

    def __post_init__(self) -> None:
        _check_scale_margin("arcface", self.s, self.m, math.pi / 2, "an angle in [0, pi/2) radians")


@dataclass(frozen=True)
class CosFaceOptions:
    """CosFace / large-margin cosine loss: target logit s * (cos(theta) - m).

    :param s: scale (64 in the CosFace paper).
    :param m: additive cosine margin (0.35 in the CosFace paper).
    """

    s: float = 64.0
    m: float = 0.35

    def __post_init__(self) -> None:
        _check_scale_margin("cosface", self.s, self.m, 2.0, "a cosine margin in [0, 2)")


@dataclass(frozen=True)
class AMSoftmaxOptions:
    """Additive-margin softmax: target logit s * (cos(theta) - m).

    :param s: scale (30 in the AM-Softmax paper).
    :param m: additive cosine margin (0.35 in the AM-Softmax paper).
    """

    s: float = 30.0
    m: float = 0.35

    def __post_init__(self) -> None:
        _check_scale_margin("am_softmax", self.s, self.m, 2.0, "a cosine margin in [0, 2)")


@dataclass(frozen=True)
class CombinedMarginOptions:
    """Combined margin: target logit s * (cos(m1 * theta + m2) - m3).

    ``m1`` > 1 is a SphereFace-style multiplicative angular margin, ``m2``
    ArcFace's additive angular margin, ``m3`` CosFace's additive cosine
    margin.  The defaults (1.0, 0.3, 0.2) are the combination of the ArcFace
    paper's Table 8 / insightface's ``combined`` configuration.

    :param s: scale.
    :param m1: multiplicative angular margin (>= 1).
    :param m2: additive angular margin (radians, >= 0).
    :param m3: additive cosine margin (>= 0).
    """

    s: float = 64.0
    m1: float = 1.0
    m2: float = 0.3
    m3: float = 0.2

    def __post_init__(self) -> None:
        _positive("combined.s", self.s)
        _in_range("combined.m1", self.m1, 1.0, 16.0, "a multiplicative margin in [1, 16)")
        _in_range("combined.m2", self.m2, 0.0, math.pi / 2, "an angle in [0, pi/2) radians")
        _in_range("combined.m3", self.m3, 0.0, 2.0, "a cosine margin in [0, 2)")


@dataclass(frozen=True)
class PartialFCOptions:
    """Sharded margin softmax (Partial FC); the margin defaults are ArcFace's.

    :param s: scale of the cosine logits.
    :param m1: multiplicative angular margin (SphereFace, >= 1).
    :param m2: additive angular margin in radians (ArcFace: 0.5).
    :param m3: additive cosine margin (CosFace: 0.35).
    :param sample_rate: fraction of each rank's centres used per step
        (positives always kept); 1.0 uses all of them (exact loss).
    """

    s: float = 64.0
    m1: float = 1.0
    m2: float = 0.5
    m3: float = 0.0
    sample_rate: float = 1.0

    def __post_init__(self) -> None:
        _positive("partial_fc.s", self.s)
        _in_range("partial_fc.m1", self.m1, 1.0, 16.0, "a multiplicative margin in [1, 16)")
        _in_range("partial_fc.m2", self.m2, 0.0, math.pi / 2, "an angle in [0, pi/2) radians")
        _in_range("partial_fc.m3", self.m3, 0.0, 2.0, "a cosine margin in [0, 2)")
        if isinstance(self.sample_rate, bool) or not (
                isinstance(self.sample_rate, (int, float)) and 0.0 < self.sample_rate <= 1.0):
            raise OptionError(f"partial_fc.sample_rate={short_repr(self.sample_rate)}: expected a fraction in (0, 1]")
