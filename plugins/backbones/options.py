"""Options of the built-in backbones (``-o <backbone>.<key>=<value>``).

This module is imported by the plugin's ``__init__`` to build the specs, so it
must stay free of torch.  Each options class is a frozen dataclass; its
``__post_init__`` normalises and checks the values, raising
:class:`harness.specs.OptionError` (a :class:`harness.errors.ConfigError`)
with a message that names the option and what it accepts.

``input_size`` is ``(height, width)``.  A single integer (``-o
lresnet50.input_size=96``) means a square input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness._values import short_repr
from harness.specs import OptionError, WeightsSpec, check_range

__all__ = [
    "InceptionResNetV1Options",
    "LResNetOptions",
    "MobileFaceNetOptions",
    "SphereResNetOptions",
    "MOBILEFACENET_CASIA",
    "MOBILEFACENET_CASIA_INPUT",
]

#: (height, width) of the CASIA-trained MobileFaceNet checkpoint (SphereFace 112x96 crops).
MOBILEFACENET_CASIA_INPUT: tuple[int, int] = (112, 96)

#: The CASIA-WebFace MobileFaceNet checkpoint (``-o mobilefacenet.weights=casia``).
MOBILEFACENET_CASIA = WeightsSpec(
    filename="068.ckpt",
    sha256="e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99",
    data_path="weights/mobilefacenet/068.ckpt",
    license="no licence stated: tests only",
    source="github.com/Xiaoccer/MobileFaceNet_Pytorch",
)


#: The largest input side and embedding a backbone accepts: far above any
#: face model, far below what exhausts memory before the network is built.
MAX_INPUT_SIDE = 1024
MAX_EMBEDDING_SIZE = 8192
#: The most weights a final FC layer sized by the input may hold (~1 GiB of float32).
MAX_FC_PARAMS = 1 << 28


def _size_pair(value: object, where: str) -> tuple[int, int]:
    """``112`` / ``(112,)`` / ``(112, 96)`` / ``[112, 96]`` -> ``(112, 96)``."""
    if isinstance(value, bool):
        raise OptionError(f"{where}={short_repr(value)}: expected an integer or height,width")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) in (1, 2):
        items = tuple(value)
        pair = (items[0], items[-1])
    else:
        raise OptionError(
            f"{where}={short_repr(value)}: expected an integer (square input) or 'height,width'"
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise OptionError(f"{where}={short_repr(value)}: sizes must be positive integers")
    if max(pair) > MAX_INPUT_SIDE:
        raise OptionError(
            f"{where}={short_repr(value)}: sides must be at most {MAX_INPUT_SIDE} pixels"
        )
    return (int(pair[0]), int(pair[1]))


def _check_common(opts: object, name: str, min_size: int, fc_from_map: bool = False) -> None:
    """Bounds shared by the backbones; ``fc_from_map``: the final FC layer takes the
    whole 512-channel map of four stride-2 stages, so its size grows with the input."""
    check_range(f"{name}.embedding_size", getattr(opts, "embedding_size"), 1, MAX_EMBEDDING_SIZE, integer=True)
    dropout = getattr(opts, "dropout", 0.0)
    if isinstance(dropout, bool) or not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise OptionError(f"{name}.dropout={short_repr(dropout)}: expected a probability in [0, 1)")
    size = getattr(opts, "input_size")
    if size is not None:
        size = _size_pair(size, f"{name}.input_size")
        object.__setattr__(opts, "input_size", size)
        if min(size) < min_size:
            raise OptionError(
                f"{name}.input_size={size[0]},{size[1]}: this network needs at least "
                f"{min_size}x{min_size} pixels"
            )
        cells = -(-size[0] // 16) * -(-size[1] // 16)
        if fc_from_map and 512 * cells * getattr(opts, "embedding_size") > MAX_FC_PARAMS:
            raise OptionError(
                f"{name}.input_size={size[0]},{size[1]} with embedding_size={getattr(opts, 'embedding_size')} "
                f"needs a final FC layer of {512 * cells * getattr(opts, 'embedding_size'):,} weights "
                f"(at most {MAX_FC_PARAMS:,}): use a smaller input or embedding"
            )


def _check_weights_path(path: str, name: str) -> None:
    """A checkpoint path option: bounded length, and the file exists (checked again at build)."""
    if len(path) > 4096 or "\x00" in path:
        raise OptionError(f"{name}.weights={path[:60]!r}...: not a usable file path")
    if path and not Path(path).expanduser().is_file():  # knowable before any work starts
        raise OptionError(f"{name}.weights={path[:200]}: no such file; pass the path of a state dict (.pth / .pt)")


@dataclass(frozen=True)
class SphereResNetOptions:
    """SphereFace residual network (resnet20 / resnet36).

    :param embedding_size: output dimension D of the final FC layer.
    :param input_size: (height, width); the FC layer is sized for it.
    :param batch_norm: add BatchNorm after each convolution (OpenSphere's
        ``sfnet*_bn``); the SphereFace original has none.
    :param dropout: dropout before the FC layer.
    """

    embedding_size: int = 512
    input_size: tuple[int, int] = (112, 112)
    batch_norm: bool = False
    dropout: float = 0.0

    MIN_SIZE = 16  # four stride-2 stages

    def __post_init__(self) -> None:
        _check_common(self, "resnet_sphere", self.MIN_SIZE, fc_from_map=True)


@dataclass(frozen=True)
class InceptionResNetV1Options:
    """FaceNet's Inception-ResNet-v1.

    :param embedding_size: output dimension D (bottleneck FC + BatchNorm).
    :param input_size: (height, width); FaceNet uses 160x160, at least 75.
    :param dropout: dropout before the bottleneck FC (facenet trains with 0.2).
    :param weights: path of a state dict to load: facenet-pytorch's
        ``InceptionResnetV1`` layout or facebench's own (see ``_import.py``).
    """

    embedding_size: int = 512
    input_size: tuple[int, int] = (160, 160)
    dropout: float = 0.0
    weights: str = ""

    MIN_SIZE = 75  # the smallest input whose Mixed_7a output is still 1x1

    def __post_init__(self) -> None:
        _check_common(self, "inception_resnet_v1", self.MIN_SIZE)
        _check_weights_path(self.weights, "inception_resnet_v1")


@dataclass(frozen=True)
class LResNetOptions:
    """ArcFace's LResNet-E-IR (IR-50 / IR-100) with the BN-Dropout-FC-BN head.

    :param dropout: dropout in the output head (ArcFace uses 0.4 on small sets).
    :param embedding_size: output dimension D.
    :param input_size: (height, width); the FC layer is sized for it.
    :param weights: path of a state dict to load: arcface_torch's ``iresnet50``
        / ``iresnet100`` layout (``backbone.pth``) or facebench's own (see ``_import.py``).
    """

    dropout: float = 0.0
    embedding_size: int = 512
    input_size: tuple[int, int] = (112, 112)
    weights: str = ""

    MIN_SIZE = 16

    def __post_init__(self) -> None:
        _check_common(self, "lresnet", self.MIN_SIZE, fc_from_map=True)
        _check_weights_path(self.weights, "lresnet")


@dataclass(frozen=True)
class MobileFaceNetOptions:
    """MobileFaceNet (Chen et al. 2018).

    :param embedding_size: output dimension D (128 in the paper).
    :param input_size: (height, width); ``None`` means 112x112, or 112x96
        with ``weights=casia``.  The global depthwise conv is sized for it.
    :param weights: ``none`` (random init) or ``casia``: the CASIA-WebFace
        checkpoint of Xiaoccer/MobileFaceNet_Pytorch (112x96, 128-d; evaluate
        with feature = concat(f(x), f(flip x))).
    :param weights_path: explicit path of the checkpoint (else it is located
        under FACEBENCH_DATA).
    """

    embedding_size: int = 128
    input_size: tuple[int, int] | None = None
    weights: Literal["none", "casia"] = "none"
    weights_path: str = ""

    MIN_SIZE = 16

    def __post_init__(self) -> None:
        if self.weights not in ("none", "casia"):
            raise OptionError(
                f"mobilefacenet.weights={short_repr(self.weights)}: expected 'none' or 'casia'"
            )
        _check_common(self, "mobilefacenet", self.MIN_SIZE)
        if self.input_size is None:
            default = MOBILEFACENET_CASIA_INPUT if self.weights == "casia" else (112, 112)
            object.__setattr__(self, "input_size", default)
        if self.weights == "casia":
            if self.input_size != MOBILEFACENET_CASIA_INPUT or self.embedding_size != 128:
                raise OptionError(
                    "mobilefacenet.weights=casia loads a checkpoint trained on 112x96 crops "
                    "with a 128-d embedding; got input_size="
                    f"{self.input_size[0]},{self.input_size[1]} and embedding_size="
                    f"{self.embedding_size}. Leave both unset with weights=casia."
                )
        elif self.weights_path:
            raise OptionError(
                "mobilefacenet.weights_path is only used with mobilefacenet.weights=casia"
            )
