"""``rec``: MXNet RecordIO training sets (insightface ``train.rec`` / ``train.idx``).

``path`` is the ``.rec`` file or a folder holding ``train.rec``.  Read in pure
Python (:mod:`harness.formats.recordio`); mxnet is not needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.images import decode_image
from harness.formats.recordio import RecordIOReader, read_insightface_rec, unpack
from harness.types import Dataset, ImageSet

from facebench_plugins.datasets._common import require_path

__all__ = ["RecLoader", "RecordIODataset", "build"]


class RecLoader:
    """``loader(key)``: decode the image of record ``int(key)`` (picklable)."""

    def __init__(self, reader: RecordIOReader) -> None:
        self.reader = reader

    def __call__(self, key: str) -> np.ndarray:
        k = int(key)
        where = f"{self.reader.path}, record {k}"
        _h, payload = unpack(self.reader.read_idx(k), where=where)
        return decode_image(payload, where=where)

    def raw(self, key: str) -> bytes:
        """The encoded image bytes of record ``int(key)``."""
        k = int(key)
        return unpack(self.reader.read_idx(k), where=f"{self.reader.path}, record {k}")[1]


def locate_rec(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        cands = [path / "train.rec"] + sorted(path.glob("*.rec"))
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise DataError(f"{path}: no .rec file inside; expected train.rec (+ train.idx)")
        return found
    return path


class RecordIODataset(Dataset):
    name = "rec"

    def __init__(self, path: Path, aligned: str = "arcface_112", skip_bad: bool = False) -> None:
        self.path = locate_rec(path)
        self.aligned = aligned or None
        self.skip_bad = skip_bad

    def train_set(self) -> ImageSet:
        rec = read_insightface_rec(self.path, skip_bad=self.skip_bad)
        n_classes = int(rec.labels.max()) + 1 if len(rec.labels) else 0
        return ImageSet(keys=[str(k) for k in rec.keys], labels=rec.labels, loader=RecLoader(rec.reader),
                        identities=tuple(str(i) for i in range(n_classes)), aligned=self.aligned,
                        info={"source": str(self.path), "format": "recordio",
                              "identity_ranges": len(rec.ranges), "skipped": rec.skipped})

    def __repr__(self) -> str:
        return f"RecordIODataset({str(self.path)!r})"


def build(opts: Any, path: Any = None) -> RecordIODataset:
    return RecordIODataset(require_path(path, "rec"), opts.aligned, opts.skip_bad)
