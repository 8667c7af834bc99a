"""Built-in recognizers: specs only; implementations are imported when selected.

No framework is imported here: ``harness list`` reads these specs without
torch, OpenCV or dlib.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import RecognizerSpec, WeightsSpec

from facebench_plugins.recognizers._onnx_spec import onnx_specs
from facebench_plugins.recognizers.options import DlibResnetOptions

__all__ = ["DLIB_RESNET_WEIGHTS", "DLIB_SHAPE5_WEIGHTS", "DlibResnetOptions", "register_recognizers"]

_DLIB_SOURCE = "dlib.net (Davis King); PyPI face-recognition-models 0.3.0"

DLIB_RESNET_WEIGHTS = WeightsSpec(
    filename="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    env="FACEBENCH_DLIB_RESNET",
    package="face_recognition_models",
    license="CC0-1.0",
    source=_DLIB_SOURCE,
)
DLIB_SHAPE5_WEIGHTS = WeightsSpec(
    filename="shape_predictor_5_face_landmarks.dat",
    sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    env="FACEBENCH_DLIB_SHAPE5",
    package="face_recognition_models",
    license="CC0-1.0",
    source=_DLIB_SOURCE,
)


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
                "detector": "dlib_hog",
                "default_for": ("inpainting",),
            },
        ),
        *onnx_specs(),
    ]
