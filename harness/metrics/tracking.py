"""Landmark tracking metrics without annotations: jitter and track continuity (numpy only).

* **jitter** of frame t: the shape of frame t-1 is mapped onto the shape of frame t by the
  least-squares similarity transform (rotation, uniform scale, translation; Umeyama 1991),
  which removes the global motion of the head and camera; what is left — the mean distance
  between the mapped and the current points — is divided by the current shape's
  inter-ocular distance and given in percent.  A still face whose points wobble has high
  jitter; a face that moves rigidly and is followed exactly has none.
* **continuity**: the fraction of frames with a shape, the number of breaks (a frame with a
  shape followed by one without) and the longest run of frames with a shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.metrics._checks import MetricInputError

__all__ = ["continuity", "frame_jitter", "similarity_fit"]


def similarity_fit(src: Any, dst: Any) -> np.ndarray:
    """3 x 3 matrix of the similarity that maps ``src`` (P, 2) onto ``dst`` (P, 2) best in least squares.

    Umeyama's closed form (reflections excluded).  Fewer than two distinct points raise.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise MetricInputError(f"similarity_fit needs two (P, 2) point sets of one shape, got {src.shape} "
                               f"and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if len(src) < 2 or var_s <= 1e-12:
        raise MetricInputError("similarity_fit needs at least two distinct source points")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(sig) @ sign)) / var_s
    m = np.eye(3)
    m[:2, :2] = scale * rot
    m[:2, 2] = mu_d - scale * rot @ mu_s
    return m


def frame_jitter(shapes: Any, normaliser: Any) -> np.ndarray:
    """(T,) jitter of each frame in percent of ``normaliser`` (T,); NaN where frame t or t-1 has no shape.

    :param shapes: (T, P, 2) points per frame, NaN rows for frames without a shape.
    :param normaliser: (T,) inter-ocular distance of each frame's shape (the unit of the result).
    """
    shapes, norm = np.asarray(shapes, np.float64), np.asarray(normaliser, np.float64).reshape(-1)
    if shapes.ndim != 3 or shapes.shape[2] != 2 or len(norm) != len(shapes):
        raise MetricInputError(f"frame_jitter needs (T, P, 2) shapes and (T,) normalisers, got {shapes.shape} "
                               f"and {norm.shape}")
    out = np.full(len(shapes), np.nan)
    ok = np.isfinite(shapes).all(axis=(1, 2)) & np.isfinite(norm) & (norm > 0)
    for t in range(1, len(shapes)):
        if ok[t] and ok[t - 1]:
            m = similarity_fit(shapes[t - 1], shapes[t])
            moved = shapes[t - 1] @ m[:2, :2].T + m[:2, 2]
            out[t] = 100.0 * np.linalg.norm(moved - shapes[t], axis=1).mean() / norm[t]
    return out


def continuity(found: Any) -> dict[str, Any]:
    """Frames with a shape (fraction), breaks (a frame with one followed by one without) and the longest run."""
    f = np.asarray(found, bool).reshape(-1)
    if not len(f):
        raise MetricInputError("continuity of an empty sequence")
    longest = run = 0
    for x in f:
        run = run + 1 if x else 0
        longest = max(longest, run)
    breaks = int((f[:-1] & ~f[1:]).sum())
    return {"frames": int(len(f)), "with_shape": float(f.mean()), "breaks": breaks, "longest_run": int(longest)}
