"""Helpers the dataset modules share (picklable loaders, ranges, paths)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import ConfigError, DataError
from harness.formats.images import decode_image, read_image

__all__ = ["FileLoader", "kfold_ids", "parse_ranges", "require_path"]


class FileLoader:
    """``loader(key) -> RGB uint8`` where the key is a file path (picklable)."""

    def __call__(self, key: str) -> np.ndarray:
        return read_image(key)


class BytesLoader:
    """``loader(key)`` for keys ``"<source>#<i>"`` over a list of encoded images."""

    def __init__(self, source: str, blobs: Sequence[bytes]) -> None:
        self.source = source
        self.blobs = blobs

    def __call__(self, key: str) -> np.ndarray:
        i = int(str(key).rsplit("#", 1)[1])
        return decode_image(self.blobs[i], where=f"{self.source}, image {i}")


def parse_ranges(text: str, what: str = "subjects") -> list[int]:
    """``"1-30,35"`` -> [1, ..., 30, 35]."""
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if lo > hi:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"{what}={text!r}: {part!r} is not a number or a range like 1-30") from None
    if not out:
        raise ConfigError(f"{what}={text!r} selects nothing; expected e.g. '1-30' or '31-40'")
    return sorted(set(out))


def require_path(path: Any, dataset: str, default_relative: str = "") -> Path:
    """The dataset path, or the shared-data default when none is given."""
    if path:
        p = Path(str(path)).expanduser()
        if not p.exists():
            raise DataError(f"dataset {dataset!r}: {p} does not exist")
        return p
    if default_relative:
        from harness.paths import data_path

        return data_path(default_relative)
    raise ConfigError(f"dataset {dataset!r} needs a path (e.g. --train {dataset}=/path/to/data)")


def kfold_ids(n: int, folds: int) -> np.ndarray:
    """Fold id of each of ``n`` consecutive items, as sklearn ``KFold(folds)`` splits them."""
    if folds < 1:
        raise ConfigError(f"folds must be at least 1, got {folds}")
    folds = min(folds, max(n, 1))
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    return np.repeat(np.arange(folds), sizes).astype(np.int64)
