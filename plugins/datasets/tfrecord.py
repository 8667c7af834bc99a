"""``tfrecord``: TFRecord training sets of ``tf.train.Example`` (no TensorFlow needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.images import decode_image
from harness.formats.tfrecord import TFRecordReader, read_tfrecord_images, tfrecord_image
from harness.types import Dataset, ImageSet

from facebench_plugins.datasets._common import require_path

__all__ = ["TfrecordDataset", "TfrecordLoader", "build"]


class TfrecordLoader:
    def __init__(self, reader: TFRecordReader) -> None:
        self.reader = reader

    def __call__(self, key: str) -> np.ndarray:
        i = int(key)
        return decode_image(tfrecord_image(self.reader, i), where=f"{self.reader.path}, record {i}")

    def raw(self, key: str) -> bytes:
        return tfrecord_image(self.reader, int(key))


def locate_tfrecord(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        found = sorted(list(path.glob("*.tfrecord")) + list(path.glob("*.tfrecords")))
        if not found:
            raise DataError(f"{path}: no .tfrecord file inside")
        return found[0]
    return path


class TfrecordDataset(Dataset):
    name = "tfrecord"

    def __init__(self, path: Path, aligned: str = "arcface_112", skip_bad: bool = False) -> None:
        self.path = locate_tfrecord(path)
        self.aligned = aligned or None
        self.skip_bad = skip_bad

    def train_set(self) -> ImageSet:
        reader, keys, labels, skipped = read_tfrecord_images(self.path, skip_bad=self.skip_bad)
        n_classes = int(labels.max()) + 1 if len(labels) else 0
        return ImageSet(keys=[str(k) for k in keys], labels=labels, loader=TfrecordLoader(reader),
                        identities=tuple(str(i) for i in range(n_classes)), aligned=self.aligned,
                        info={"source": str(self.path), "format": "tfrecord", "skipped": skipped})

    def __repr__(self) -> str:
        return f"TfrecordDataset({str(self.path)!r})"


def build(opts: Any, path: Any = None) -> TfrecordDataset:
    return TfrecordDataset(require_path(path, "tfrecord"), opts.aligned, opts.skip_bad)
