"""dlib's shape predictors (ensemble of regression trees) as landmarkers."""

from __future__ import annotations

import dlib
import numpy as np

from harness.weights import locate_weights

from facebench_plugins.detectors import WEIGHTS
from facebench_plugins.detectors._common import check_image
from facebench_plugins.landmarkers.options import DlibShapeOptions
from facebench_plugins.recognizers.dlib_resnet import _rect

__all__ = ["DlibShapeLandmarker", "build_5", "build_68"]


class DlibShapeLandmarker:
    """``dlib.shape_predictor`` run in each box; ``num_points`` points per face."""

    def __init__(self, weights: str, num_points: int, options: DlibShapeOptions | None = None) -> None:
        self.options = options or DlibShapeOptions()
        self.num_points = num_points
        self.weights_path = locate_weights(WEIGHTS[weights], self.options.shape_predictor or None)
        self._predictor = dlib.shape_predictor(str(self.weights_path))

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        image = check_image(image)
        out = np.zeros((0, self.num_points, 2), np.float32)
        rows = [np.array([(p.x, p.y) for p in self._predictor(image, _rect(b, image.shape)).parts()], np.float32)
                for b in np.asarray(boxes, np.float64).reshape(-1, 4)]
        return np.stack(rows) if rows else out


def build_68(options: DlibShapeOptions | None = None) -> DlibShapeLandmarker:
    return DlibShapeLandmarker("dlib_shape68", 68, options)


def build_5(options: DlibShapeOptions | None = None) -> DlibShapeLandmarker:
    return DlibShapeLandmarker("dlib_shape5", 5, options)
