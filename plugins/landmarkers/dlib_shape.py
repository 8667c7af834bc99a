"""dlib's shape predictors (ensemble of regression trees) as landmarkers.

A shape predictor starts from its mean shape placed in the face box and refines it with its
cascade; the mean shape is the first thing its model file stores, read here
(:func:`read_mean_shape`) so that a tracker can choose a box whose start shape fits the
previous frame's points (:class:`harness.types.BoxInitialisedLandmarker`).
"""

from __future__ import annotations

import dlib
import numpy as np

from harness.errors import HarnessError
from harness.weights import locate_weights

from facebench_plugins.detectors import WEIGHTS
from facebench_plugins.detectors._common import check_image
from facebench_plugins.landmarkers.options import DlibShapeOptions
from facebench_plugins.recognizers.dlib_resnet import _rect

__all__ = ["DlibShapeLandmarker", "build_5", "build_68", "read_mean_shape"]

#: bytes read from the start of a model file for its mean shape (68 points take about 1.4 kB)
_HEAD_BYTES = 16384


def _read_int(buf: bytes, at: int) -> tuple[int, int]:
    """One integer in dlib's serialisation (a control byte: sign bit 0x80, byte count in the low
    nibble; then that many little-endian bytes) and the offset after it."""
    if at >= len(buf):
        raise ValueError("the model file ends inside its header")
    control = buf[at]
    n = control & 0x0F
    if n > 8 or at + 1 + n > len(buf):
        raise ValueError("not a dlib integer")
    value = int.from_bytes(buf[at + 1:at + 1 + n], "little")
    return (-value if control & 0x80 else value), at + 1 + n


def read_mean_shape(path: str, num_points: int) -> np.ndarray:
    """(num_points, 2) mean shape of a dlib ``shape_predictor_*.dat`` in box units ((0, 0): the box's
    top-left corner, (1, 1): its bottom-right).  The file starts with a version (1) and the initial
    shape as a column of x, y floats (dlib stores each as a mantissa and a base-2 exponent).

    :raises HarnessError: the file does not start like a shape predictor of ``num_points`` points.
    """
    with open(path, "rb") as fh:
        buf = fh.read(_HEAD_BYTES)
    try:
        version, at = _read_int(buf, 0)
        rows, at = _read_int(buf, at)
        cols, at = _read_int(buf, at)
        if version != 1 or abs(rows) != 2 * num_points or abs(cols) != 1:
            raise ValueError(f"version {version}, a {abs(rows)} x {abs(cols)} initial shape")
        values = []
        for _ in range(2 * num_points):
            mantissa, at = _read_int(buf, at)
            exponent, at = _read_int(buf, at)
            values.append(mantissa * 2.0 ** exponent)
    except ValueError as exc:
        raise HarnessError(f"{path}: not a dlib shape predictor of {num_points} points ({exc}); point "
                           "-o dlib_68.shape_predictor / dlib_5.shape_predictor at dlib's .dat file") from None
    return np.asarray(values, np.float64).reshape(num_points, 2)


class DlibShapeLandmarker:
    """``dlib.shape_predictor`` run in each box; ``num_points`` points per face."""

    def __init__(self, weights: str, num_points: int, options: DlibShapeOptions | None = None) -> None:
        self.options = options or DlibShapeOptions()
        self.num_points = num_points
        self.weights_path = locate_weights(WEIGHTS[weights], self.options.shape_predictor or None)
        self._predictor = dlib.shape_predictor(str(self.weights_path))
        #: the start shape in box units (:class:`harness.types.BoxInitialisedLandmarker`)
        self.mean_shape = read_mean_shape(str(self.weights_path), num_points)

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
