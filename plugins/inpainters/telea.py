"""``telea``: OpenCV's fast-marching inpainting (Telea 2004) of the mesh mask."""

from __future__ import annotations

from facebench_plugins.inpainters import OpenCVInpaintOptions
from facebench_plugins.inpainters._opencv import OpenCVInpainter

__all__ = ["build"]


def build(options: OpenCVInpaintOptions | None = None) -> OpenCVInpainter:
    """Factory named by the ``telea`` spec."""
    return OpenCVInpainter("telea", options)
