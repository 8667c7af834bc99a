"""A detector's five points as a landmarker: the detector runs on a crop around each given box."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from facebench_plugins.detectors._common import check_image
from facebench_plugins.landmarkers.options import DetectorPointsOptions

__all__ = ["DetectorPoints", "build_mtcnn", "build_retinaface", "build_yunet", "iou"]


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1, y1, x2, y2 box with each of ``boxes`` (M, 4)."""
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


class DetectorPoints:
    """Five points per box from ``detector`` (an object with ``detect(image) -> Detections``)."""

    num_points = 5

    def __init__(self, detector: Any, options: DetectorPointsOptions | None = None) -> None:
        self.detector = detector
        self.options = options or DetectorPointsOptions()

    def _crop(self, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        size = box[2:] - box[:2]
        lo = np.floor(np.clip(box[:2] - self.options.margin * size, 0, None)).astype(int)
        hi = np.ceil(np.minimum(box[2:] + self.options.margin * size, [w, h])).astype(int)
        return image[lo[1]:hi[1], lo[0]:hi[0]], lo.astype(np.float64)

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        image = check_image(image)
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        out = np.full((len(boxes), 5, 2), np.nan, np.float32)
        for i, box in enumerate(boxes):
            crop, offset = self._crop(image, box)
            if crop.shape[0] < 2 or crop.shape[1] < 2:
                continue
            found = self.detector.detect(np.ascontiguousarray(crop))
            if len(found) == 0 or found.landmarks is None:
                continue
            overlap = iou(box - np.tile(offset, 2), found.boxes.astype(np.float64))
            best = int(np.argmax(overlap))
            if overlap[best] >= self.options.min_iou:
                out[i] = found.landmarks[best] + offset
        return out


def _build(name: str, options: DetectorPointsOptions | None) -> DetectorPoints:
    module = importlib.import_module(f"facebench_plugins.detectors.{name}")
    return DetectorPoints(module.build(), options)


def build_mtcnn(options: DetectorPointsOptions | None = None) -> DetectorPoints:
    return _build("mtcnn", options)


def build_retinaface(options: DetectorPointsOptions | None = None) -> DetectorPoints:
    return _build("retinaface", options)


def build_yunet(options: DetectorPointsOptions | None = None) -> DetectorPoints:
    return _build("yunet", options)
