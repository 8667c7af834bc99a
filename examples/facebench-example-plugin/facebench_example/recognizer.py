"""The example recognizer, ``example_pixels``: numpy only (``framework="none"``).

A pretrained recognizer is any object with ``embed(images) -> (N, D)``; the
task hands it face crops already aligned to the spec's ``alignment`` template
and resized to its ``input_size``, as RGB uint8 arrays.  This one is a
baseline, not a face model: the grey-level crop, mean-removed and scaled to
unit length, compared by cosine similarity.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class PixelRecognizer:
    """``embed(crops) -> (N, H*W) float32``, unit-length rows."""

    def __init__(self, center: bool) -> None:
        self.center = center

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        grey = np.stack([np.asarray(im, np.float32).reshape(im.shape[0], im.shape[1], -1).mean(axis=2)
                         for im in images]).reshape(len(images), -1)
        if self.center:
            grey -= grey.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(grey, axis=1, keepdims=True)
        return grey / np.maximum(norm, 1e-6)


def build(options: Any) -> PixelRecognizer:
    """The factory the spec names: called with the validated options dataclass."""
    return PixelRecognizer(options.center)
