"""Options of the built-in liveness models (``-o <liveness>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.specs import check_range

__all__ = ["AuxDepthOptions", "BinaryCnnOptions", "LbpSvmOptions", "MinifasnetOptions"]


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")


@dataclass(frozen=True)
class LbpSvmOptions:
    """Options of ``lbp_svm``.

    :param size: crops are resized to size x size before LBP.
    :param colour_spaces: comma list of ``ycbcr``, ``hsv``, ``rgb``, ``gray``.
    :param scales: ``P,R`` pairs separated by ``;`` (P = 8: 59-bin
        non-rotation-invariant uniform codes; other P: P+2 rotation-invariant uniform).
    :param c: SVM regularisation C.
    :param kernel: ``rbf`` or ``linear``.
    :param gamma: RBF gamma: ``scale``, ``auto`` or a number.
    """

    size: int = 112
    colour_spaces: str = "ycbcr,hsv"
    scales: str = "8,1;8,2;16,2"
    c: float = 10.0
    kernel: Literal["rbf", "linear"] = "rbf"
    gamma: str = "scale"

    def __post_init__(self) -> None:
        check_range("lbp_svm.size", self.size, 8, 1024, integer=True)
        _positive("c", self.c)
        spaces = [s.strip() for s in self.colour_spaces.split(",") if s.strip()]
        bad = [s for s in spaces if s not in ("ycbcr", "hsv", "rgb", "gray")]
        if bad or not spaces:
            raise ValueError(f"colour_spaces: {bad or 'empty'}; use a comma list of ycbcr, hsv, rgb, gray")
        for pair in self.scales.split(";"):
            try:
                p, r = (float(v) for v in pair.split(","))
            except ValueError:
                raise ValueError(f"scales: {pair!r} is not 'P,R' (e.g. '8,1;16,2')") from None
            if p < 4 or r <= 0:
                raise ValueError(f"scales: {pair!r} needs P >= 4 and R > 0")
        if self.gamma not in ("scale", "auto"):
            try:
                _positive("gamma", float(self.gamma))
            except ValueError:
                raise ValueError(f"gamma must be 'scale', 'auto' or a positive number, got {self.gamma!r}") from None


@dataclass(frozen=True)
class _TorchTrainOptions:
    size: int = 64
    width: int = 16
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    threads: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.size < 32 or self.size % 8:
            raise ValueError(f"size must be a multiple of 8 and >= 32, got {self.size}")
        for name in ("width", "epochs", "batch_size", "lr"):
            _positive(name, getattr(self, name))
        for name, high in (("size", 1024), ("width", 1024), ("epochs", 100_000), ("batch_size", 65_536),
                           ("threads", 1024)):
            check_range(name, getattr(self, name), 0, high, integer=True)


@dataclass(frozen=True)
class BinaryCnnOptions(_TorchTrainOptions):
    """Options of ``binary_cnn`` (a small VGG-style CNN, binary cross-entropy).

    :param size: input crop size (square).
    :param width: channels of the first block (doubling per block).
    :param epochs, batch_size, lr, weight_decay: Adam training.
    :param augment: random flips and small shifts while training.
    :param seed: initialisation and batch order.
    :param threads: torch threads (0 = leave as is).
    :param device: ``cpu`` or ``cuda``.
    """


@dataclass(frozen=True)
class AuxDepthOptions(_TorchTrainOptions):
    """Options of ``aux_depth`` (depth-map supervision, Liu et al. 2018).

    :param binary_head: also train a binary live/attack head on the deepest features.
    :param fusion: weight of the depth score in the final score
        (1 = depth map only; the rest goes to the binary head's probability).
    :param binary_weight: weight of the binary loss beside the depth loss.
    Other fields as ``binary_cnn``; the depth map is size / 4 on a side.
    """

    binary_head: bool = True
    fusion: float = 0.5
    binary_weight: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.fusion <= 1.0:
            raise ValueError(f"fusion must be in [0, 1], got {self.fusion}")
        if not self.binary_head and self.fusion != 1.0:
            object.__setattr__(self, "fusion", 1.0)


@dataclass(frozen=True)
class MinifasnetOptions:
    """Options of ``minifasnet``.

    :param models: comma list of ``v2`` (MiniFASNetV2, box scale 2.7) and
        ``v1se`` (MiniFASNetV1SE, box scale 4.0); their softmax is averaged.
    :param detector: registry detector used by ``score`` on full images.
    :param face_policy: which face ``score`` uses when several are found.
    :param detect_max_side: images are shrunk to this longest side for detection only (0 = never).
    :param weights_dir: folder holding both ``.pth`` files (overrides the search).
    :param threads: torch threads (0 = leave as is).
    """

    models: str = "v2,v1se"
    detector: str = "retinaface"
    face_policy: Literal["largest", "center"] = "largest"
    detect_max_side: int = 640
    weights_dir: str = ""
    threads: int = 0

    def __post_init__(self) -> None:
        from facebench_plugins.liveness import MINIFASNET_WEIGHTS  # the package imports this module first

        names = [m.strip() for m in self.models.split(",") if m.strip()]
        bad = [m for m in names if m not in MINIFASNET_WEIGHTS]
        if bad or not names:
            raise ValueError(f"models: {bad or 'empty'}; use a comma list of {', '.join(MINIFASNET_WEIGHTS)}")
        check_range("minifasnet.detect_max_side", self.detect_max_side, 0, 16_384, integer=True)
