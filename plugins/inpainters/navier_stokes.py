"""``navier_stokes``: OpenCV's Navier-Stokes inpainting (Bertalmio et al. 2001) of the mesh mask."""

from __future__ import annotations

from facebench_plugins.inpainters import OpenCVInpaintOptions
from facebench_plugins.inpainters._opencv import OpenCVInpainter

__all__ = ["build"]


def build(options: OpenCVInpaintOptions | None = None) -> OpenCVInpainter:
    """Factory named by the ``navier_stokes`` spec."""
    return OpenCVInpainter("navier_stokes", options)
