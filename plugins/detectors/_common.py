"""Helpers shared by the built-in detectors (numpy only)."""

from __future__ import annotations

import numpy as np

from harness.types import Detections

__all__ = ["check_image", "empty", "nms_numpy", "order_landmarks"]


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous (H, W, 3) uint8 RGB array, or a clear error."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"detectors take (H, W, 3) uint8 RGB images, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def empty(with_landmarks: bool) -> Detections:
    return Detections.empty(with_landmarks=with_landmarks)


def order_landmarks(points: np.ndarray) -> np.ndarray:
    """Put (N, 5, 2) eye and mouth pairs in image-left, image-right order.

    For upright faces the order of each pair is fixed by the model; this only
    swaps a pair whose first point lies to the right of its second.
    """
    pts = np.array(points, dtype=np.float32).reshape(-1, 5, 2)
    for a, b in ((0, 1), (3, 4)):
        swap = pts[:, a, 0] > pts[:, b, 0]
        pts[swap, a], pts[swap, b] = pts[swap, b].copy(), pts[swap, a].copy()
    return pts


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, highest score first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores), kind="stable")
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        ov = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[ov <= iou]
    return np.asarray(keep, dtype=np.int64)
