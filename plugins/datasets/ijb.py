"""``ijb``: an IJB-B / IJB-C release in insightface's layout (``meta/`` + ``loose_crop/``).

The protocol files are read by :func:`harness.formats.ijb.read_ijb` (docs/identification.md lists
them).  ``templates()`` returns the protocol and the loose crops as an :class:`ImageSet` of raw
photos; ``info["landmarks"]`` holds the release's five points per face when it has them, so faces
are aligned from those points rather than detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.formats.ijb import IjbMeta, read_ijb
from harness.types import Dataset, ImageSet

from facebench_plugins.datasets._common import FileLoader, require_path

__all__ = ["Ijb", "build"]


class Ijb(Dataset):
    name = "ijb"

    def __init__(self, root: Path, pooling: str = "media", face_norm: bool = False) -> None:
        self.root = Path(root)
        self.pooling = pooling
        self.face_norm = face_norm

    def templates(self) -> tuple[IjbMeta, ImageSet]:
        meta = read_ijb(self.root)
        keys = [str(self.root / "loose_crop" / n) for n in meta.names]
        images = ImageSet(keys=keys, labels=np.full(len(keys), -1, np.int64), loader=FileLoader(), aligned=None,
                          info={"source": str(self.root), "format": "ijb", "landmarks": meta.landmarks})
        return meta, images

    def __repr__(self) -> str:
        return f"Ijb({str(self.root)!r}, pooling={self.pooling!r})"


def build(opts: Any, path: Any = None) -> Ijb:
    return Ijb(require_path(path, "ijb"), opts.pooling, opts.face_norm)
