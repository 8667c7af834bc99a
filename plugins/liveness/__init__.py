"""Built-in liveness (presentation-attack detection): specs only.

Implementations live in sibling modules (``lbp_svm``, ``binary_cnn``,
``aux_depth``, ``minifasnet``) and are imported only when selected; this
package imports no framework, so ``harness list`` stays light.

Every built model has ``score(images) -> ndarray (N,)``, higher = bona
fide.  ``meta["input"]`` says what ``images`` are:

* ``"face_crop"``: RGB uint8 face crops aligned to ``meta["alignment"]``
  (the liveness task detects, aligns and resizes to ``input_size``);
* ``"full_image"``: whole RGB photos; the model finds the face itself
  (``minifasnet``), or takes a box through ``score_faces(image, boxes)``.

Trainable ones also have ``fit(images, labels, species=None, progress=True)``
(labels 1 = bona fide), ``save(path)`` and ``load(path)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.hookspecs import hookimpl
from harness.specs import LivenessSpec, WeightsSpec

__all__ = [
    "AuxDepthOptions",
    "BinaryCnnOptions",
    "LbpSvmOptions",
    "MINIFASNET_WEIGHTS",
    "MinifasnetOptions",
    "register_liveness",
]

_P = "facebench_plugins.liveness"
_MINIFAS_SOURCE = "minivision-ai/Silent-Face-Anti-Spoofing (resources/anti_spoof_models)"

#: the two MiniFASNet models, by option name
MINIFASNET_WEIGHTS = {
    "v2": WeightsSpec(
        filename="2.7_80x80_MiniFASNetV2.pth", sha256="a5eb02e1843f19b5", env="FACEBENCH_MINIFASNET_DIR",
        data_path="weights/minifasnet/2.7_80x80_MiniFASNetV2.pth", license="Apache-2.0", source=_MINIFAS_SOURCE,
    ),
    "v1se": WeightsSpec(
        filename="4_0_0_80x80_MiniFASNetV1SE.pth", sha256="84ee1d37d96894d5", env="FACEBENCH_MINIFASNET_DIR",
        data_path="weights/minifasnet/4_0_0_80x80_MiniFASNetV1SE.pth", license="Apache-2.0", source=_MINIFAS_SOURCE,
    ),
}


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
        _positive("size", self.size)
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
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")


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
        names = [m.strip() for m in self.models.split(",") if m.strip()]
        bad = [m for m in names if m not in MINIFASNET_WEIGHTS]
        if bad or not names:
            raise ValueError(f"models: {bad or 'empty'}; use a comma list of {', '.join(MINIFASNET_WEIGHTS)}")
        if self.detect_max_side < 0:
            raise ValueError(f"detect_max_side must be >= 0, got {self.detect_max_side}")


_DEPTH_LABELS = (
    "Depth labels: the paper rendered each live face's depth with a 3D face alignment model; here "
    "every live crop gets one fixed template depth map defined in the arcface_112 frame (the crops are "
    "five-point aligned, so the template's eyes, nose and mouth coincide with the face's): a half-ellipsoid "
    "over the face oval (centre 56,60; semi-axes 44 x 56 px) plus a Gaussian nose ridge at the template nose, "
    "scaled to [0, 1] and resized to the map size; attacks get an all-zero (flat) map."
)


@hookimpl
def register_liveness():
    return [
        LivenessSpec(
            name="aux_depth",
            summary="Fully convolutional net regressing a face depth map (live: face-shaped, attack: flat), "
            "scored by the map's mean, fused with a binary head.",
            factory=f"{_P}.aux_depth:build",
            framework="torch",
            options=AuxDepthOptions,
            paper="Y. Liu, A. Jourabloo, X. Liu, 'Learning Deep Models for Face Anti-Spoofing: Binary or "
            "Auxiliary Supervision', CVPR 2018",
            license="Apache-2.0 (code written here)",
            trainable=True,
            input_size=(64, 64),
            meta={"input": "face_crop", "alignment": "arcface_112", "normalisation": "(x - 127.5) / 128, RGB",
                  "score": "fusion * mean(depth map) / mean(template) + (1 - fusion) * P(bona fide)",
                  "depth_labels": _DEPTH_LABELS, "depth_map": "size / 4 on a side"},
        ),
        LivenessSpec(
            name="binary_cnn",
            summary="Small VGG-style CNN trained with binary (live / attack) supervision.",
            factory=f"{_P}.binary_cnn:build",
            framework="torch",
            options=BinaryCnnOptions,
            paper="J. Yang, Z. Lei, S. Z. Li, 'Learn Convolutional Neural Network for Face Anti-Spoofing', "
            "arXiv:1408.5601, 2014 (binary-supervised CNN baseline)",
            license="Apache-2.0 (code written here)",
            trainable=True,
            input_size=(64, 64),
            meta={"input": "face_crop", "alignment": "arcface_112", "normalisation": "(x - 127.5) / 128, RGB",
                  "score": "logit of P(bona fide)"},
        ),
        LivenessSpec(
            name="lbp_svm",
            summary="Multi-scale LBP histograms in YCbCr and HSV + an SVM (the classical colour-texture baseline).",
            factory=f"{_P}.lbp_svm:build",
            framework="opencv",
            options=LbpSvmOptions,
            paper="Z. Boulkenafet, J. Komulainen, A. Hadid, 'Face Anti-Spoofing Based on Color Texture "
            "Analysis', ICIP 2015",
            license="Apache-2.0 (code written here; scikit-image, scikit-learn: BSD-3-Clause)",
            trainable=True,
            input_size=(112, 112),
            meta={"input": "face_crop", "alignment": "arcface_112",
                  "features": "per channel of each colour space: LBP histograms at each (P, R) scale",
                  "score": "SVM decision value (positive = bona fide)"},
        ),
        LivenessSpec(
            name="minifasnet",
            summary="MiniFASNetV2 (box x2.7) + MiniFASNetV1SE (box x4.0), 80x80 BGR patches, softmax averaged "
            "(pretrained, Silent-Face-Anti-Spoofing).",
            factory=f"{_P}.minifasnet:build",
            framework="torch",
            options=MinifasnetOptions,
            paper="Minivision, Silent-Face-Anti-Spoofing (MiniFASNet: MobileFaceNet-derived, pruned; "
            "Fourier-spectrum auxiliary supervision in training), 2020",
            license="Apache-2.0 (weights and reference code: minivision-ai)",
            weights=tuple(MINIFASNET_WEIGHTS.values()),
            trainable=False,
            input_size=(80, 80),
            meta={"input": "full_image", "classes": "0 = print attack, 1 = real, 2 = replay attack",
                  "crop": "box (x, y, w, h) scaled by 2.7 / 4.0 about its centre, clamped to the image by "
                  "shifting, cut and resized to 80x80 (upstream CropImage rule)",
                  "normalisation": "BGR, float 0..255, no mean / std (as upstream trained)",
                  "score": "mean over the models of softmax[1] (P(real))"},
        ),
    ]
