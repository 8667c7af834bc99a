"""``imagefolder``: one sub-folder of images per identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.folders import scan_identities
from harness.formats.images import read_image
from harness.types import Dataset, ImageSet

from facebench_plugins.datasets._common import FileLoader, require_path

__all__ = ["ImageFolder", "build"]


class ImageFolder(Dataset):
    name = "imagefolder"

    def __init__(self, root: Path, min_images: int = 1, aligned: str = "", skip_bad: bool = False) -> None:
        self.root = Path(root)
        self.min_images = min_images
        self.aligned = aligned or None
        self.skip_bad = skip_bad

    def train_set(self) -> ImageSet:
        ids = scan_identities(self.root, min_images=self.min_images)
        keys: list[str] = []
        labels: list[int] = []
        skipped: list[str] = []
        for label, ident in enumerate(ids):
            for f in ident.files:
                if self.skip_bad:
                    try:
                        read_image(f)
                    except DataError as exc:
                        skipped.append(str(exc))
                        continue
                keys.append(str(f))
                labels.append(label)
        return ImageSet(keys=keys, labels=np.asarray(labels, np.int64), loader=FileLoader(),
                        identities=tuple(i.name for i in ids), aligned=self.aligned,
                        info={"source": str(self.root), "format": "imagefolder", "skipped": skipped})

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r})"


def build(opts: Any, path: Any = None) -> ImageFolder:
    return ImageFolder(require_path(path, "imagefolder"), opts.min_images, opts.aligned, opts.skip_bad)
