"""The one-euro filter (Casiez, Roussel, Vogel, "1 € Filter: A Simple Speed-based Low-pass Filter
for Noisy Input in Interactive Systems", CHI 2012) for landmark shapes, frame by frame.

A first-order low-pass filter whose cut-off rises with the speed of the signal: slow motion
(a still face whose points wobble) is smoothed hard, fast motion passes with little lag.
Per frame t (the sampling period is one frame, so cut-offs are in cycles per frame)::

    alpha(fc)  = 1 / (1 + 1 / (2 pi fc))
    dx_t       = alpha(d_cutoff) * (x_t - y_{t-1}) + (1 - alpha(d_cutoff)) * dx_{t-1}
    fc_t       = min_cutoff + beta * |dx_t|
    y_t        = alpha(fc_t) * x_t + (1 - alpha(fc_t)) * y_{t-1}

For a shape, ``dx`` is each point's (2-D) velocity in units of ``scale`` per frame (the
inter-ocular distance, so ``beta`` does not depend on the face's size in pixels) and ``|dx|``
its length, so each point gets its own cut-off.  The first frame, and the first after :meth:`reset`, pass unchanged.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "alpha"]


def alpha(cutoff: float | np.ndarray) -> float | np.ndarray:
    """Smoothing factor of a first-order low-pass with ``cutoff`` cycles per sample, one sample apart."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau)


class OneEuroFilter:
    """One-euro filter of (P, 2) shapes.

    :param min_cutoff: cut-off (cycles per frame) of a still shape.
    :param beta: cut-off added per unit of speed (``scale`` per frame).
    :param d_cutoff: cut-off of the speed estimate itself.
    """

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next shape passes unchanged (a new track)."""
        self._y: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def __call__(self, shape: np.ndarray, scale: float) -> np.ndarray:
        x = np.asarray(shape, np.float64)
        if not np.isfinite(x).all() or not (np.isfinite(scale) and scale > 0):
            self.reset()
            return x
        if self._y is None:
            self._y, self._dx = x.copy(), np.zeros_like(x)
            return x
        a_d = alpha(self.d_cutoff)
        self._dx = a_d * (x - self._y) / scale + (1 - a_d) * self._dx
        a = alpha(self.min_cutoff + self.beta * np.linalg.norm(self._dx, axis=-1))[:, None]
        self._y = a * x + (1 - a) * self._y
        return self._y.copy()
