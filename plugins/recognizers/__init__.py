"""Built-in recognizers: specs only; implementations are imported when selected.

No framework is imported here: ``harness list`` reads these specs without
torch, OpenCV or dlib.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hookspecs import hookimpl
from harness.specs import RecognizerSpec, WeightsSpec

__all__ = ["DLIB_RESNET_WEIGHTS", "DLIB_SHAPE5_WEIGHTS", "DlibResnetOptions", "register_recognizers"]

_DLIB_SOURCE = "dlib.net (Davis King); PyPI face-recognition-models 0.3.0"

DLIB_RESNET_WEIGHTS = WeightsSpec(
    filename="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a5",
    env="FACEBENCH_DLIB_RESNET",
    package="face_recognition_models",
    license="CC0-1.0",
    source=_DLIB_SOURCE,
)
DLIB_SHAPE5_WEIGHTS = WeightsSpec(
    filename="shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d",
    env="FACEBENCH_DLIB_SHAPE5",
    package="face_recognition_models",
    license="CC0-1.0",
    source=_DLIB_SOURCE,
)


@dataclass(frozen=True)
class DlibResnetOptions:
    """Options of ``dlib_resnet``.

    :param alignment: ``dlib_chip`` (default): dlib's own 150×150 chip from
        the 5-point shape predictor run on each detected box
        (``embed_faces``); ``arcface_112``: embed five-point similarity crops
        made by :func:`harness.align.align` (resized to 150×150).
    :param padding: chip padding passed to ``dlib.get_face_chip`` (dlib: 0.25).
    :param jitters: ``num_jitters`` of ``compute_face_descriptor`` (dlib: 0; 100 gives
        dlib's published 99.38 % but is 100× slower).
    :param weights: path to ``dlib_face_recognition_resnet_model_v1.dat`` (overrides the search).
    :param shape_predictor: path to ``shape_predictor_5_face_landmarks.dat``.
    """

    alignment: str = "dlib_chip"
    padding: float = 0.25
    jitters: int = 0
    weights: str = ""
    shape_predictor: str = ""

    def __post_init__(self) -> None:
        if self.alignment not in ("dlib_chip", "arcface_112"):
            raise ValueError(f"alignment must be 'dlib_chip' or 'arcface_112', got {self.alignment!r}")
        if self.jitters < 0:
            raise ValueError(f"jitters must be >= 0, got {self.jitters}")
        if not 0 <= self.padding <= 1:
            raise ValueError(f"padding must be in [0, 1], got {self.padding}")


@hookimpl
def register_recognizers():
    return [
        RecognizerSpec(
            name="dlib_resnet",
            summary="dlib's 128-d ResNet-29 face descriptor (99.38 % published on LFW).",
            factory="facebench_plugins.recognizers.dlib_resnet:build",
            framework="dlib",
            options=DlibResnetOptions,
            paper="D. E. King, 'Dlib-ml', JMLR 2009; model: dlib.net/face_recognition "
            "(ResNet-29 trained with a metric loss on ~3M faces, 2017)",
            license="Boost Software License (dlib); CC0-1.0 (model)",
            weights=(DLIB_RESNET_WEIGHTS, DLIB_SHAPE5_WEIGHTS),
            input_size=(150, 150),
            embedding_size=128,
            alignment="dlib_chip",
            distance="euclidean",
            published={"lfw_accuracy": 0.9938, "lfw_std": 0.0027, "threshold": 0.6, "jitters": 100},
            meta={
                "normalisation": "none (dlib takes RGB uint8)",
                "threshold_convention": "same person when euclidean distance < 0.6",
                "alignments": ["dlib_chip", "arcface_112"],
            },
        )
    ]
