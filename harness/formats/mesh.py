"""Synthetic ID-photo mesh / watermark overlays ("网纹").

ID-card photos released by identity-verification services carry a "mesh": a
lattice of thin, wavy lines laid over the face, then JPEG-compressed.
:func:`mesh_image` draws such an overlay on a face and returns the meshed
image and the binary mask of the pixels the lines cover, deterministically
from a seed, so inpainting models can be trained and scored on (meshed,
clean, mask) triples made on the fly.

How one overlay is drawn (every range below is a field of :class:`MeshParams`):

1. ``families`` sets of parallel wavy lines (2 = a lattice).  Family ``f``
   runs at angle ``theta_f`` (the first drawn from ``angle``, the others
   rotated by ``crossing`` degrees); its lines are ``period`` pixels apart and
   undulate as ``amplitude * sin(2 pi v / wavelength + phase)`` along the
   line direction ``v``.
2. Lines are ``thickness`` pixels wide and rasterised anti-aliased from the
   exact distance to the nearest line, so the coverage is in [0, 1].
3. The lines are blended in ``color`` (one RGB colour per overlay: grey,
   white, blue-grey or a random tint) with opacity ``alpha``.
4. The meshed image is re-compressed as JPEG at a quality drawn from
   ``jpeg_quality`` (``None`` = keep it lossless).
5. ``mask`` is 1 where the coverage times the opacity exceeds
   ``mask_threshold``: the pixels an inpainter must restore.

All sizes are in pixels of the input image, for a 112-pixel face; they are
scaled by ``min(H, W) / 112`` for other sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["MeshParams", "mesh_image", "sample_mesh"]


@dataclass(frozen=True)
class MeshParams:
    """Ranges the generator draws from (``(low, high)`` is uniform)."""

    families: tuple[int, int] = (2, 2)
    angle: tuple[float, float] = (0.0, 180.0)
    crossing: tuple[float, float] = (50.0, 130.0)
    period: tuple[float, float] = (8.0, 18.0)
    wavelength: tuple[float, float] = (18.0, 60.0)
    amplitude: tuple[float, float] = (1.0, 4.5)
    thickness: tuple[float, float] = (0.6, 1.5)
    alpha: tuple[float, float] = (0.45, 0.9)
    colors: tuple[tuple[int, int, int], ...] = (
        (128, 128, 128), (235, 235, 235), (150, 160, 185), (90, 90, 90),
    )
    random_color_prob: float = 0.25
    jpeg_quality: tuple[int, int] | None = (55, 90)
    mask_threshold: float = 0.15
    reference_size: int = 112


@dataclass(frozen=True)
class MeshSample:
    """The concrete values drawn for one overlay (recorded beside outputs)."""

    thetas: tuple[float, ...]
    periods: tuple[float, ...]
    wavelengths: tuple[float, ...]
    amplitudes: tuple[float, ...]
    phases: tuple[float, ...]
    offsets: tuple[float, ...]
    thickness: float
    alpha: float
    color: tuple[int, int, int]
    jpeg_quality: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def _rng(rng_or_seed: Any) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def sample_mesh(shape: tuple[int, ...], rng_or_seed: Any, params: MeshParams | None = None) -> MeshSample:
    """Draw the values of one overlay for an image of ``shape``."""
    p = params or MeshParams()
    rng = _rng(rng_or_seed)
    scale = min(shape[0], shape[1]) / float(p.reference_size)
    n = int(rng.integers(p.families[0], p.families[1] + 1))
    base = math.radians(rng.uniform(*p.angle))
    thetas = [base]
    for _ in range(1, n):
        thetas.append(thetas[-1] + math.radians(rng.uniform(*p.crossing)))
    periods = tuple(float(rng.uniform(*p.period)) * scale for _ in range(n))
    wavelengths = tuple(float(rng.uniform(*p.wavelength)) * scale for _ in range(n))
    amplitudes = tuple(float(rng.uniform(*p.amplitude)) * scale for _ in range(n))
    phases = tuple(float(rng.uniform(0, 2 * math.pi)) for _ in range(n))
    offsets = tuple(float(rng.uniform(0, per)) for per in periods)
    thickness = float(rng.uniform(*p.thickness)) * max(scale, 0.5)
    alpha = float(rng.uniform(*p.alpha))
    if rng.random() < p.random_color_prob:
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
    else:
        color = tuple(p.colors[int(rng.integers(len(p.colors)))])
    quality = None if p.jpeg_quality is None else int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    return MeshSample(tuple(thetas), periods, wavelengths, amplitudes, phases, offsets,
                      thickness, alpha, color, quality)  # type: ignore[arg-type]


def _coverage(h: int, w: int, s: MeshSample) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cov = np.zeros((h, w), np.float32)
    half = s.thickness / 2.0
    for theta, per, wl, amp, ph, off in zip(s.thetas, s.periods, s.wavelengths, s.amplitudes, s.phases, s.offsets):
        c, sn = math.cos(theta), math.sin(theta)
        u = x * c + y * sn  # across the lines
        v = -x * sn + y * c  # along the lines
        arg = 2 * math.pi * v / wl + ph
        shifted = u - amp * np.sin(arg) - off
        # distance across to the nearest line, corrected for the wave's slope
        d = np.abs(shifted - per * np.round(shifted / per))
        slope = amp * 2 * math.pi / wl * np.cos(arg)
        d = d / np.sqrt(1.0 + slope * slope)
        cov = np.maximum(cov, np.clip(half + 0.5 - d, 0.0, 1.0))
    return cov


def mesh_image(
    image: np.ndarray, rng_or_seed: Any, params: MeshParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Overlay a synthetic ID-photo mesh on ``image``.

    :param image: (H, W, 3) RGB uint8 (a 2-D grayscale image is expanded).
    :param rng_or_seed: an ``int`` seed or a ``numpy.random.Generator``;
        the same seed and image give the same output.
    :param params: the generator's ranges (:class:`MeshParams`).
    :returns: ``(meshed, mask)``: meshed RGB uint8 of the same shape, and an
        (H, W) uint8 mask, 1 where the mesh covers the face.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"mesh_image expects an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    p = params or MeshParams()
    s = sample_mesh(img.shape, rng_or_seed, p)
    h, w = img.shape[:2]
    cov = _coverage(h, w, s)
    a = (cov * s.alpha)[:, :, None]
    color = np.asarray(s.color, np.float32)[None, None, :]
    out = img.astype(np.float32) * (1.0 - a) + color * a
    meshed = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if s.jpeg_quality is not None:
        from harness.formats.images import decode_image, encode_image

        meshed = decode_image(encode_image(meshed, ".jpg", quality=s.jpeg_quality), where="mesh jpeg")
    mask = (cov * s.alpha > p.mask_threshold).astype(np.uint8)
    return meshed, mask


def params_with(**overrides: Any) -> MeshParams:
    """``MeshParams`` with some fields replaced (CLI helper)."""
    return replace(MeshParams(), **overrides)
