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

from harness.hookspecs import hookimpl
from harness.specs import LivenessSpec, WeightsSpec

from facebench_plugins.liveness.options import (
    AuxDepthOptions,
    BinaryCnnOptions,
    LbpSvmOptions,
    MinifasnetOptions,
)

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
        filename="2.7_80x80_MiniFASNetV2.pth",
        sha256="a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
        env="FACEBENCH_MINIFASNET_DIR",
        data_path="weights/minifasnet/2.7_80x80_MiniFASNetV2.pth", license="Apache-2.0", source=_MINIFAS_SOURCE,
    ),
    "v1se": WeightsSpec(
        filename="4_0_0_80x80_MiniFASNetV1SE.pth",
        sha256="84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
        env="FACEBENCH_MINIFASNET_DIR",
        data_path="weights/minifasnet/4_0_0_80x80_MiniFASNetV1SE.pth", license="Apache-2.0", source=_MINIFAS_SOURCE,
    ),
}


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
