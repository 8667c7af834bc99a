"""YuNet (libfacedetection) via ``cv2.FaceDetectorYN``."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from harness.types import Detections
from harness.weights import locate_weights

from facebench_plugins.detectors import WEIGHTS, YunetOptions
from facebench_plugins.detectors._common import check_image, empty

__all__ = ["YunetDetector", "build"]

#: YuNet's row: x, y, w, h, then right eye, left eye, nose tip, right mouth
#: corner, left mouth corner (the subject's right/left), then the score.  The
#: subject's right eye is on the image's left, so the order already matches
#: facebench's image-left-first convention: indices into the 5 points.
_TO_FACEBENCH = [0, 1, 2, 3, 4]


class YunetDetector:
    has_landmarks = True

    def __init__(self, options: YunetOptions | None = None) -> None:
        self.options = options or YunetOptions()
        self.weights_path = locate_weights(WEIGHTS["yunet"], self.options.weights or None)
        o = self.options
        self._net = cv2.FaceDetectorYN.create(
            str(self.weights_path), "", (320, 320), o.score_threshold, o.nms, o.top_k
        )

    def detect(self, image: np.ndarray) -> Detections:
        image = check_image(image)
        h, w = image.shape[:2]
        self._net.setInputSize((w, h))
        _ok, faces = self._net.detect(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if faces is None or len(faces) == 0:
            return empty(True)
        faces = np.asarray(faces, dtype=np.float32).reshape(-1, 15)
        boxes = np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:4]], axis=1)
        landmarks = faces[:, 4:14].reshape(-1, 5, 2)[:, _TO_FACEBENCH]
        scores = faces[:, 14]
        order = np.argsort(-scores, kind="stable")
        return Detections(boxes[order], scores[order], landmarks[order])

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One image at a time (FaceDetectorYN takes one input size per call)."""
        return [self.detect(im) for im in images]


def build(options: YunetOptions | None = None) -> YunetDetector:
    return YunetDetector(options)
