"""dlib's 128-d ResNet face descriptor as a facebench recognizer.

Two entry points:

* :meth:`DlibResnetRecognizer.embed_faces` — a raw image and face boxes (from
  any detector): dlib's 5-point shape predictor is run in each box, dlib cuts
  its own 150×150 chip (``get_face_chip``) and the ResNet embeds it.  This is
  the alignment the model was trained with (``alignment="dlib_chip"``).
* :meth:`DlibResnetRecognizer.embed` — already aligned crops.  With the
  default alignment these must be dlib chips (:meth:`chips` makes them); with
  ``alignment="arcface_112"`` they are five-point crops from
  :func:`harness.align.align`, resized to 150×150.

It satisfies :class:`harness.types.SelfAligningRecognizer`: tasks ask it for
its own alignment (``own_alignment``, ``align_faces``) instead of matching its
name.  Embeddings compare with the Euclidean distance; dlib's convention calls
two faces the same person below 0.6.
"""

from __future__ import annotations

from typing import Sequence

import dlib
import numpy as np

from harness.weights import locate_weights

from facebench_plugins.recognizers import DLIB_RESNET_WEIGHTS, DLIB_SHAPE5_WEIGHTS, DlibResnetOptions

__all__ = ["DlibResnetRecognizer", "build"]

CHIP_SIZE = 150


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def _rect(box: Sequence[float], shape: tuple[int, ...]) -> "dlib.rectangle":
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    h, w = shape[:2]
    # dlib rectangles are inclusive integer pixel bounds
    x1, y1 = max(0, round(x1)), max(0, round(y1))
    x2, y2 = min(w - 1, round(x2) - 1), min(h - 1, round(y2) - 1)
    return dlib.rectangle(int(x1), int(y1), int(max(x1, x2)), int(max(y1, y2)))


class DlibResnetRecognizer:
    """dlib ResNet-29 metric network; see the module docstring."""

    embedding_size = 128
    input_size = (CHIP_SIZE, CHIP_SIZE)
    distance = "euclidean"

    def __init__(self, options: DlibResnetOptions | None = None) -> None:
        self.options = options or DlibResnetOptions()
        #: the alignment ``embed`` expects its crops in
        self.alignment = self.options.alignment
        self.weights_path = locate_weights(DLIB_RESNET_WEIGHTS, self.options.weights or None)
        self.shape_path = locate_weights(DLIB_SHAPE5_WEIGHTS, self.options.shape_predictor or None)
        self._net = dlib.face_recognition_model_v1(str(self.weights_path))
        self._shape = dlib.shape_predictor(str(self.shape_path))

    # ------------------------------------------------------------ alignment
    def shapes(self, image: np.ndarray, boxes: np.ndarray) -> "dlib.full_object_detections":
        """dlib's 5-point shapes (eye corners, nose base) in each box."""
        image = _rgb(image)
        out = dlib.full_object_detections()
        for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            out.append(self._shape(image, _rect(box, image.shape)))
        return out

    def chips(self, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """dlib's aligned 150×150 chips of the faces in ``boxes`` (what ``embed`` takes)."""
        shapes = self.shapes(image, boxes)
        if len(shapes) == 0:
            return []
        return list(dlib.get_face_chips(_rgb(image), shapes, size=CHIP_SIZE, padding=self.options.padding))

    # ------------------------------------- the self-aligning contract (harness.types)
    def own_alignment(self) -> str | None:
        """dlib's own chip alignment (``alignment="dlib_chip"``), or ``None`` when
        ``embed`` takes five-point template crops (``alignment="arcface_112"``)."""
        if self.options.alignment == "dlib_chip":
            return f"dlib_chip (5-point shape predictor, {CHIP_SIZE}x{CHIP_SIZE})"
        return None

    def align_faces(self, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """One dlib chip per box: the crops ``embed`` takes (see :meth:`chips`)."""
        return self.chips(image, boxes)

    # ------------------------------------------------------------ embedding
    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (N, 128) float32 of aligned crops (150×150; others are resized)."""
        crops = []
        for img in images:
            img = _rgb(img)
            if img.shape[:2] != (CHIP_SIZE, CHIP_SIZE):
                import cv2

                interp = cv2.INTER_AREA if min(img.shape[:2]) > CHIP_SIZE else cv2.INTER_LINEAR
                img = cv2.resize(img, (CHIP_SIZE, CHIP_SIZE), interpolation=interp)
            crops.append(img)
        if not crops:
            return np.zeros((0, self.embedding_size), np.float32)
        desc = self._net.compute_face_descriptor(crops, self.options.jitters)
        return np.asarray([np.asarray(d) for d in desc], dtype=np.float32).reshape(-1, self.embedding_size)

    def embed_faces(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embeddings (N, 128) of the faces in ``boxes`` (N, 4: x1, y1, x2, y2) of a raw image.

        Runs the 5-point shape predictor in each box and embeds dlib's own
        150×150 chips, the alignment the model was trained with.
        """
        image = _rgb(image)
        shapes = self.shapes(image, boxes)
        if len(shapes) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        desc = self._net.compute_face_descriptor(image, shapes, self.options.jitters, self.options.padding)
        return np.asarray([np.asarray(d) for d in desc], dtype=np.float32).reshape(-1, self.embedding_size)

    # ------------------------------------------------ model card and manifest
    def describe(self) -> dict:
        """What shapes an embedding (the run's manifest): files and their sha256, chip, runtime."""
        from harness.weights import sha256_file

        o = self.options
        return {
            "model": str(self.weights_path), "sha256": sha256_file(self.weights_path),
            "shape_predictor": str(self.shape_path), "shape_predictor_sha256": sha256_file(self.shape_path),
            "alignment": o.alignment, "padding": o.padding, "jitters": o.jitters,
            "input_size": [CHIP_SIZE, CHIP_SIZE], "color": "rgb",
            "normalisation": "none: RGB uint8 chips into dlib", "flip": "none", "precision": "float32",
            "dlib": dlib.__version__, "device": "cuda" if getattr(dlib, "DLIB_USE_CUDA", False) else "cpu",
        }

    def compute(self) -> dict:
        """Not counted: the network is a dlib DNN read from a .dat file, neither a torch nor an ONNX graph."""
        return {"params": None, "flops": None,
                "reason": "dlib's ResNet-29 is a serialized dlib DNN (.dat): no torch or ONNX graph to count"}

    @staticmethod
    def distance_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Euclidean distances between rows of ``a`` and ``b``."""
        return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


def build(options: DlibResnetOptions | None = None) -> DlibResnetRecognizer:
    """Factory named by the ``dlib_resnet`` spec."""
    return DlibResnetRecognizer(options)
