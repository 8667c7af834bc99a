"""``bin``: insightface verification ``.bin`` files (aligned crops, two per pair).

``bin=FILE`` opens one set; ``bin=DIR`` opens a folder of them (``lfw.bin``,
``cfp_fp.bin``, ``agedb_30.bin``, ... any name) as a
:class:`~harness.types.VerificationSuite`: a recognition run evaluates every
set in one run (:mod:`harness.tasks.bin_suite`).

Loaded with :func:`harness.formats.insightface_bin.load_bin`, whose unpickler
refuses every global a ``.bin`` does not need.  Pair ``i`` is images ``2i``
and ``2i+1``; folds are consecutive, as insightface's ``KFold(10,
shuffle=False)`` splits them (for LFW's ``lfw.bin`` exactly View 2's folds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.insightface_bin import load_bin
from harness.types import Dataset, ImageSet, PairSet

from facebench_plugins.datasets._common import BytesLoader, kfold_ids, require_path

__all__ = ["BinPairs", "BinSuite", "bin_files", "build"]


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


def bin_files(folder: Path) -> list[Path]:
    """The ``*.bin`` files directly in ``folder``, sorted by name; a one-line error when there are
    none or two differ only in case (their set names would collide)."""
    files = sorted((p for p in Path(folder).iterdir() if p.suffix.lower() == ".bin" and p.is_file()),
                   key=lambda p: p.name)
    if not files:
        raise DataError(f"dataset 'bin': {folder} holds no .bin file; expected insightface verification "
                        "sets such as lfw.bin, cfp_fp.bin, agedb_30.bin (write one with `harness data bin`)")
    seen: dict[str, Path] = {}
    for p in files:
        other = seen.setdefault(p.stem.lower(), p)
        if other is not p:
            raise DataError(f"dataset 'bin': {other.name} and {p.name} in {folder} name the same set; "
                            "rename or remove one")
    return files


class BinSuite(Dataset):
    """A folder of ``.bin`` files: one named verification set per file (the stem is its name)."""

    name = "bin"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def suite_members(self) -> list[tuple[str, str]]:
        return [(p.stem.lower(), str(p)) for p in bin_files(self.folder)]

    def verification(self) -> PairSet:
        names = ", ".join(name for name, _ in self.suite_members())
        raise DataError(f"dataset 'bin': {self.folder} is a folder of .bin sets ({names}); a recognition "
                        "run evaluates them all (--eval bin=DIR), elsewhere name one file (bin=DIR/lfw.bin)")

    def __repr__(self) -> str:
        return f"BinSuite({str(self.folder)!r})"


def build(opts: Any, path: Any = None) -> BinPairs | BinSuite:
    p = require_path(path, "bin")
    if p.is_dir():
        return BinSuite(p)
    return BinPairs(p, opts.folds, opts.aligned, opts.protocol)
