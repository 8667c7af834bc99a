"""``bin``: insightface verification ``.bin`` files (aligned crops, two per pair).

Loaded with :func:`harness.formats.insightface_bin.load_bin`, whose unpickler
refuses every global a ``.bin`` does not need.  Pair ``i`` is images ``2i``
and ``2i+1``; folds are consecutive, as insightface's ``KFold(10,
shuffle=False)`` splits them (for LFW's ``lfw.bin`` exactly View 2's folds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.formats.insightface_bin import load_bin
from harness.types import Dataset, ImageSet, PairSet

from facebench_plugins.datasets._common import BytesLoader, kfold_ids, require_path

__all__ = ["BinPairs", "build"]


class BinPairs(Dataset):
    name = "bin"

    def __init__(self, path: Path, folds: int = 10, aligned: str = "arcface_112", protocol: str = "") -> None:
        self.path = Path(path)
        self.folds = folds
        self.aligned = aligned or None
        self.protocol = protocol

    def verification(self) -> PairSet:
        blobs, issame = load_bin(self.path)
        n = len(issame)
        keys = [f"{self.path}#{i}" for i in range(len(blobs))]
        images = ImageSet(keys=keys, labels=np.full(len(keys), -1, np.int64),
                          loader=BytesLoader(str(self.path), blobs), aligned=self.aligned,
                          info={"source": str(self.path), "format": "insightface-bin"})
        folds = kfold_ids(n, self.folds)
        k = int(folds.max()) + 1 if n else 0
        protocol = self.protocol
        if not protocol:
            if self.path.stem.lower() == "lfw" and n == 6000 and k == 10:
                protocol = "LFW View 2 (6,000 pairs, 10 folds)"
            else:
                protocol = f"{self.path.name} ({n:,} pairs, {k} fold{'s' if k != 1 else ''})"
        return PairSet(images=images, pairs=np.arange(2 * n, dtype=np.int64).reshape(-1, 2),
                       issame=np.asarray(issame, bool), folds=folds, protocol=protocol)

    def __repr__(self) -> str:
        return f"BinPairs({str(self.path)!r})"


def build(opts: Any, path: Any = None) -> BinPairs:
    return BinPairs(require_path(path, "bin"), opts.folds, opts.aligned, opts.protocol)
