"""Specs of the ONNX recognizers (``onnx``, ``sface``; options in ``options.py``); no framework import.

``onnx`` runs any face-embedding ONNX graph with onnxruntime.  Every choice
that changes an embedding — crop size, alignment template, colour order,
scale/mean/std, tensor layout, flip fusion — is an option here, so a run
states it; ``sface`` is the same runner with OpenCV Zoo's SFace graph and its
preprocessing fixed as data (:data:`SFACE_PREPROCESSING`).

Pixel pipeline (per aligned RGB uint8 crop of ``input_size``)::

    x = crop[..., ::-1] if color == "bgr" else crop      # channel order fed
    x = (x * scale - mean) / std                         # per channel, float32
    x = x.transpose(2, 0, 1) if layout == "nchw" else x  # tensor layout

``flip``: ``none`` embeds the crop; ``sum`` adds the embeddings of the crop
and of its mirror image (insightface's evaluation); ``concat`` concatenates
them (doubles the embedding size).
"""

from __future__ import annotations

from harness.specs import RecognizerSpec

from facebench_plugins.recognizers.options import (
    SFACE_PREPROCESSING,
    SFACE_WEIGHTS,
    OnnxOptions,
    SfaceOptions,
)

__all__ = ["onnx_specs"]


def onnx_specs() -> list[RecognizerSpec]:
    """The ``onnx`` and ``sface`` recognizer specs."""
    module = "facebench_plugins.recognizers.onnx"
    return [
        RecognizerSpec(
            name="onnx",
            summary="Any face-embedding ONNX graph (onnxruntime), every preprocessing choice an option.",
            factory=f"{module}:build",
            framework="onnx",
            options=OnnxOptions,
            license="the model file's own licence (state it with the results)",
            input_size=(112, 112),
            embedding_size=512,
            alignment="arcface_112",
            distance="cosine",
            meta={
                "preprocessing": "x = (crop_in_color_order * scale - mean) / std, then layout; "
                "see the run's 'recognizer' section for the values used",
                "input_size_rule": "read from the graph when fixed, else -o onnx.input_size=H,W",
                "batching": "dynamic batch: batch_size per call (0: 1 on the CPU, 64 on a GPU); fixed "
                "batch 1: made symbolic at load (onnx package) or one image per call; fixed batch k: "
                "padded chunks of k",
                "rewrite": "at load (onnx package): weights among the graph inputs made constants, PRelu as "
                "elementwise Mul/Max; used only when equal to the file's outputs",
            },
        ),
        RecognizerSpec(
            name="sface",
            summary="OpenCV Zoo's SFace, 128-d, 112x112 (99.40 % published on LFW).",
            factory=f"{module}:build_sface",
            framework="onnx",
            options=SfaceOptions,
            paper="Y. Zhong et al., 'SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face "
            "Recognition', IEEE TIP 2021",
            license="Apache-2.0 (OpenCV Zoo)",
            weights=(SFACE_WEIGHTS,),
            input_size=(112, 112),
            embedding_size=128,
            alignment="arcface_112",
            distance="cosine",
            published={"lfw_accuracy": 0.9940, "cosine_threshold": 0.363,
                       "source": "OpenCV Zoo face_recognition_sface README (its own LFW script)"},
            meta={
                "preprocessing": dict(SFACE_PREPROCESSING),
                # OpenCV pairs SFace with YuNet: alignCrop takes a FaceDetectorYN row
                "detector": "yunet",
                "in_graph_normalisation": "(x - 127.5) * 0.0078125 (Sub and Mul nodes at the graph input)",
                "reference": "cv2.FaceRecognizerSF.feature on the same aligned crop (tests: equal to 1e-4)",
            },
        ),
    ]
