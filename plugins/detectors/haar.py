"""OpenCV Haar cascade detector (Viola-Jones); gives no landmarks."""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from harness.errors import DataError
from harness.types import Detections

from facebench_plugins.detectors import HaarOptions
from facebench_plugins.detectors._common import check_image, empty

__all__ = ["HaarDetector", "build"]


class HaarDetector:
    """``cv2.CascadeClassifier``; scores are the cascade's level weights."""

    has_landmarks = False

    def __init__(self, options: HaarOptions | None = None) -> None:
        self.options = options or HaarOptions()
        path = self.options.cascade
        if not os.path.isfile(path):
            path = os.path.join(cv2.data.haarcascades, path)
        if not os.path.isfile(path):
            raise DataError(
                f"Haar cascade {self.options.cascade!r} not found (looked in {cv2.data.haarcascades}); "
                "pass a file name from cv2.data.haarcascades or a path (opencv-python-headless<5 ships them)"
            )
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DataError(f"{path} is not a valid OpenCV cascade")
        self.path = path

    def detect(self, image: np.ndarray) -> Detections:
        image = check_image(image)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        o = self.options
        rects, _levels, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=o.scale_factor, minNeighbors=o.min_neighbors,
            minSize=(o.min_size, o.min_size), outputRejectLevels=True,
        )
        if len(rects) == 0:
            return empty(False)
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        scores = np.asarray(weights, dtype=np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")
        return Detections(boxes[order], scores[order], None)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One image at a time (the cascade has no batched form)."""
        return [self.detect(im) for im in images]


def build(options: HaarOptions | None = None) -> HaarDetector:
    return HaarDetector(options)
