"""OpenCV inpainting (Telea, Navier-Stokes) with a blind mesh-mask estimator.

The estimator looks for what a mesh is: thin lines that differ from their
surroundings in either direction (dark grey, white or tinted lines).  A
median filter wider than a line removes the lines but keeps the face's
edges; the per-pixel deviation ``sum_c |I_c - median(I)_c|`` is large on the
lines.  It is thresholded at ``k`` robust standard deviations above the
median deviation of the image (``1.4826 * MAD``), and never below
``min_deviation``.  On meshed LFW dlib chips its IoU with the true mask is
reported by the inpainting task (and by ``tests/plugins/inpainters``).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from facebench_plugins.inpainters import OpenCVInpaintOptions

__all__ = ["OpenCVInpainter", "check_images", "estimate_mesh_mask", "mask_iou"]


def check_images(images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> None:
    for i, img in enumerate(images):
        a = np.asarray(img)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"image {i}: expected (H, W, 3) uint8 RGB, got {a.dtype} {a.shape}")
    if masks is not None:
        if len(masks) != len(images):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        for i, (img, m) in enumerate(zip(images, masks)):
            if np.asarray(m).shape != np.asarray(img).shape[:2]:
                raise ValueError(f"mask {i}: shape {np.asarray(m).shape} does not match image {img.shape[:2]}")


def estimate_mesh_mask(image: np.ndarray, median: int = 5, k: float = 2.5,
                       min_deviation: float = 18.0) -> np.ndarray:
    """(H, W) uint8 mask, 1 where ``image`` (RGB uint8) probably holds a mesh line."""
    img = np.ascontiguousarray(image)
    med = cv2.medianBlur(img, median)
    dev = np.abs(img.astype(np.int16) - med.astype(np.int16)).sum(axis=2).astype(np.float32)
    centre = float(np.median(dev))
    mad = float(np.median(np.abs(dev - centre))) * 1.4826
    thr = max(centre + k * mad, min_deviation)
    return (dev > thr).astype(np.uint8)


def mask_iou(pred: np.ndarray, true: np.ndarray) -> float:
    p, t = np.asarray(pred).astype(bool), np.asarray(true).astype(bool)
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else float(np.count_nonzero(p & t) / union)


class OpenCVInpainter:
    """``cv2.inpaint`` on each image with an estimated or the given (oracle) mask."""

    trainable = False

    def __init__(self, method: str, options: OpenCVInpaintOptions | None = None) -> None:
        self.options = options or OpenCVInpaintOptions()
        self.method = method
        self._flag = {"telea": cv2.INPAINT_TELEA, "navier_stokes": cv2.INPAINT_NS}[method]
        self.needs_mask = self.options.mask == "oracle"

    @property
    def mask_mode(self) -> str:
        return "oracle (true mesh mask given)" if self.needs_mask else "estimated from the image (blind)"

    def estimate_masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        check_images(images)
        o = self.options
        return [estimate_mesh_mask(im, o.median, o.k, o.min_deviation) for im in images]

    def restore(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Restored copies of ``images``; ``masks`` are used when given (oracle), else estimated."""
        return self.restore_with_masks(images, masks)[0]

    def restore_with_masks(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
                           ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """(restored images, the masks estimated for them — None when ``masks`` were given)."""
        images = list(images)
        check_images(images, masks)
        estimated = None
        if masks is None:
            if self.needs_mask:
                raise ValueError(f"{self.method} with mask=oracle needs the true masks; "
                                 "pass masks=... or use -o {self.method}.mask=estimated")
            masks = estimated = self.estimate_masks(images)
        out = []
        kernel = None
        if self.options.dilate:
            d = 2 * self.options.dilate + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d))
        for img, m in zip(images, masks):
            m8 = (np.asarray(m) > 0).astype(np.uint8) * 255
            if kernel is not None:
                m8 = cv2.dilate(m8, kernel)
            out.append(cv2.inpaint(np.ascontiguousarray(img), m8, float(self.options.radius), self._flag))
        return out, estimated
