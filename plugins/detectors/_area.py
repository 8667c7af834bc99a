"""Area resizing as PyTorch does it (``interpolate(mode="area")``), from integral images.

``F.interpolate(x, size, mode="area")`` is adaptive average pooling: output
cell ``i`` of an axis of length ``L`` resized to ``s`` averages input rows
``floor(i·L/s) .. ceil((i+1)·L/s) - 1``.  On CPU PyTorch sums the cell in
float32 — exact for 8-bit pixels while a cell's sum stays below 2**24 — and
writes ``sum / kh / kw`` (two float32 divisions).  Taking the exact sum from
an integral image and dividing the same way gives the same float32 numbers,
bit for bit (``tests/plugins/detectors/test_mtcnn_area.py``), for a whole
image (an MTCNN pyramid level) or for many boxes at once (R-/O-Net crops),
with a handful of numpy gathers instead of one pooling call per box.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import cv2
import numpy as np

__all__ = ["IntegralTable", "pool_bounds"]

_INT32_SAFE = (2**31 - 1) // 255  # pixels whose 8-bit sum fits an int32


def pool_bounds(start: np.ndarray, stop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-average-pool cell bounds ``[lo, hi)`` (PyTorch's rule) of ``[start, stop)`` in ``size`` cells.

    ``start``/``stop`` are (N,) integer arrays; returns two (N, size) arrays.
    """
    length = (stop - start)[:, None]
    i = np.arange(size)[None, :]
    lo = start[:, None] + (i * length) // size
    hi = start[:, None] - ((-(i + 1) * length) // size)
    return lo, hi


@lru_cache(maxsize=256)
def _axis_plan(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, cell length as float32) for resizing one axis of ``length`` to ``size``."""
    lo, hi = pool_bounds(np.array([0]), np.array([length]), size)
    return lo[0], hi[0], (hi[0] - lo[0]).astype(np.float32)


class IntegralTable:
    """Integral images of several (H, W, 3) uint8 images, stored in one flat (rows, 3) table.

    Image ``k``'s integral occupies rows ``starts[k] .. starts[k] + (H+1)(W+1)``;
    entry ``(y, x)`` is the sum of pixels above and left of ``(y, x)``.  Sums are
    int32 (exact) unless an image has more than ~8.4 M pixels, then float64.
    """

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        shapes = [im.shape[:2] for im in images]
        sizes = [(h + 1) * (w + 1) for h, w in shapes]
        wide = any(h * w > _INT32_SAFE for h, w in shapes)
        self.dtype = np.float64 if wide else np.int32
        depth = cv2.CV_64F if wide else cv2.CV_32S
        self.flat = np.empty((sum(sizes), 3), self.dtype)
        self.starts = np.zeros(len(images), np.int64)
        self.stride = np.array([w + 1 for _, w in shapes], np.int64)
        self.shapes = shapes
        at = 0
        for k, (im, (h, w), n) in enumerate(zip(images, shapes, sizes)):
            self.starts[k] = at
            cv2.integral(im, sum=self.flat[at:at + n].reshape(h + 1, w + 1, 3), sdepth=depth)
            at += n

    def image(self, k: int) -> np.ndarray:
        """Image ``k``'s integral as an (H+1, W+1, 3) view."""
        h, w = self.shapes[k]
        s = int(self.starts[k])
        return self.flat[s:s + (h + 1) * (w + 1)].reshape(h + 1, w + 1, 3)

    def resize(self, k: int, height: int, width: int) -> np.ndarray:
        """Image ``k`` area-resized to (height, width, 3) float32 = ``interpolate(mode="area")``."""
        h, w = self.shapes[k]
        ylo, yhi, kh = _axis_plan(h, height)
        xlo, xhi, kw = _axis_plan(w, width)
        table = self.image(k)
        rows = np.take(table, yhi, axis=0) - np.take(table, ylo, axis=0)  # (height, W+1, 3)
        total = np.take(rows, xhi, axis=1) - np.take(rows, xlo, axis=1)   # (height, width, 3)
        return total.astype(np.float32) / kh[:, None, None] / kw[None, :, None]

    def crops(self, index: np.ndarray, y0: np.ndarray, y1: np.ndarray, x0: np.ndarray, x1: np.ndarray,
              size: int) -> np.ndarray:
        """(N, size, size, 3) float32: rows [y0, y1) × cols [x0, x1) of image ``index`` area-resized."""
        ylo, yhi = pool_bounds(y0, y1, size)
        xlo, xhi = pool_bounds(x0, x1, size)
        base = self.starts[index][:, None, None]
        stride = self.stride[index][:, None, None]
        top, bottom = base + ylo[:, :, None] * stride, base + yhi[:, :, None] * stride
        left, right = xlo[:, None, :], xhi[:, None, :]
        t = self.flat  # np.take on axis 0 gathers whole (3,) rows, ~4x faster than t[index]
        total = np.take(t, bottom + right, axis=0)
        total -= np.take(t, top + right, axis=0)
        total -= np.take(t, bottom + left, axis=0)
        total += np.take(t, top + left, axis=0)
        kh = (yhi - ylo).astype(np.float32)[:, :, None, None]
        kw = (xhi - xlo).astype(np.float32)[:, None, :, None]
        return total.astype(np.float32) / kh / kw
