"""dlib's face detectors: HOG + linear SVM (``dlib_hog``) and the MMOD CNN (``dlib_mmod``).

Landmarks come from dlib's 68-point shape predictor run in each box, reduced
to facebench's five points: eye centres (mean of points 36–41 and 42–47),
nose tip (30), mouth corners (48, 54).  dlib's 5-point model would be faster
but predicts eye corners and the nose base only — no mouth corners — so it
cannot give the five-point convention.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import dlib
import numpy as np

from harness.types import Detections
from harness.weights import locate_weights

from facebench_plugins.detectors import WEIGHTS, DlibHogOptions, DlibMmodOptions
from facebench_plugins.detectors._common import check_image, empty

__all__ = ["DlibHogDetector", "DlibMmodDetector", "build_hog", "build_mmod", "five_from_68"]


def five_from_68(parts: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG-300W points -> (5, 2): left eye, right eye, nose, left / right mouth corner."""
    p = np.asarray(parts, dtype=np.float32).reshape(68, 2)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])


def _box(rect: "dlib.rectangle") -> list[float]:
    # dlib's bounds are inclusive pixels; facebench boxes are x1, y1, x2, y2 edges
    return [rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1]


class _DlibBase:
    has_landmarks = True

    def __init__(self, options: DlibHogOptions) -> None:
        self.options = options
        self.has_landmarks = options.landmarks != "none"
        self._shape = None
        if self.has_landmarks:
            path = locate_weights(WEIGHTS["dlib_shape68"], options.shape_predictor or None)
            self._shape = dlib.shape_predictor(str(path))

    def _finish(self, image: np.ndarray, rects: list, scores: list) -> Detections:
        if not rects:
            return empty(self.has_landmarks)
        boxes = np.asarray([_box(r) for r in rects], dtype=np.float32)
        scores_a = np.asarray(scores, dtype=np.float32)
        landmarks = None
        if self._shape is not None:
            landmarks = np.stack([
                five_from_68(np.array([(pt.x, pt.y) for pt in self._shape(image, r).parts()]))
                for r in rects
            ])
        order = np.argsort(-scores_a, kind="stable")
        return Detections(boxes[order], scores_a[order], None if landmarks is None else landmarks[order])


class DlibHogDetector(_DlibBase):
    """``dlib.get_frontal_face_detector()`` (HOG, 5 poses) with 68-point landmarks."""

    def __init__(self, options: DlibHogOptions | None = None) -> None:
        super().__init__(options or DlibHogOptions())
        self._det = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> Detections:
        image = check_image(image)
        rects, scores, _poses = self._det.run(image, self.options.upsample, self.options.threshold)
        return self._finish(image, list(rects), list(scores))

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One image at a time (dlib's HOG detector has no batched form)."""
        return [self.detect(im) for im in images]


class DlibMmodDetector(_DlibBase):
    """``dlib.cnn_face_detection_model_v1`` (MMOD CNN) with 68-point landmarks."""

    def __init__(self, options: DlibMmodOptions | None = None) -> None:
        options = options or DlibMmodOptions()
        super().__init__(options)
        self.weights_path = locate_weights(WEIGHTS["dlib_mmod"], options.weights or None)
        self._det = dlib.cnn_face_detection_model_v1(str(self.weights_path))

    def _keep(self, found) -> tuple[list, list]:
        rects, scores = [], []
        for d in found:
            if d.confidence >= self.options.threshold:
                rects.append(d.rect)
                scores.append(d.confidence)
        return rects, scores

    def detect(self, image: np.ndarray) -> Detections:
        image = check_image(image)
        return self._finish(image, *self._keep(self._det(image, self.options.upsample)))

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Images of equal size run through the CNN together, ``batch_size`` at a time."""
        images = [check_image(im) for im in images]
        out: list[Detections | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, im in enumerate(images):
            groups[im.shape].append(i)
        bs = max(1, self.options.batch_size)
        for idx in groups.values():
            for start in range(0, len(idx), bs):
                chunk = idx[start:start + bs]
                found = self._det([images[i] for i in chunk], self.options.upsample, batch_size=len(chunk))
                for i, dets in zip(chunk, found):
                    out[i] = self._finish(images[i], *self._keep(dets))
        return out  # type: ignore[return-value]


def build_hog(options: DlibHogOptions | None = None) -> DlibHogDetector:
    return DlibHogDetector(options)


def build_mmod(options: DlibMmodOptions | None = None) -> DlibMmodDetector:
    return DlibMmodDetector(options)
