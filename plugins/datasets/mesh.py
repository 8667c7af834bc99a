"""``mesh``: clean faces to train a mesh-removal inpainter on.

``--train mesh=PATH`` takes one folder of images per identity, or an LFW
home (a folder with ``pairs.txt`` and ``lfw_funneled/``, whose identity
folders are then used).  The images are clean: the inpainter's ``fit``
meshes them on the fly with :func:`harness.formats.mesh.mesh_image`, and
the meshface protocol drops (or cross-fits away) every identity it
evaluates, so the identity folder names matter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.formats.lfw_layout import images_in, lfw_home

from facebench_plugins.datasets._common import require_path
from facebench_plugins.datasets.imagefolder import ImageFolder

__all__ = ["MeshFaces", "build", "face_root"]


def face_root(path: Path) -> Path:
    """The identity-folder root of ``path``: itself, or an LFW home's image
    folder (found by :mod:`harness.formats.lfw_layout`, as the lfw dataset does)."""
    path = lfw_home(path)
    if (path / "pairs.txt").exists():
        return images_in(path) or path
    return path


class MeshFaces(ImageFolder):
    name = "mesh"

    def train_set(self):
        images = super().train_set()
        images.info["format"] = "mesh (clean faces; meshed on the fly by the inpainter)"
        return images

    def __repr__(self) -> str:
        return f"MeshFaces({str(self.root)!r})"


def build(opts: Any, path: Any = None) -> MeshFaces:
    root = face_root(require_path(path, "mesh"))
    return MeshFaces(root, opts.min_images, opts.aligned, opts.skip_bad)
