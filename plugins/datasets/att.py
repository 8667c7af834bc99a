"""``att``: AT&T / ORL faces, ``s1..s40/1..10.pgm`` (92x112 grayscale -> RGB).

``train_set()`` holds ``-o att.train_subjects`` (default 1-30) and
``verification()`` pairs over ``-o att.test_subjects`` (default 31-40): the
pairs are generated (LFW-style folds, seeded) over those subjects.  The
images are tightly cropped, roughly centred faces; they are used as they are
(``aligned="att_92x112"``), resized to the model's input, not detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.folders import resolve_image, scan_identities
from harness.formats.pairs import generate_pairs
from harness.types import Dataset, ImageSet, PairSet

from facebench_plugins.datasets._common import FileLoader, parse_ranges, require_path

__all__ = ["Att", "build"]


class Att(Dataset):
    name = "att"

    aligned = "att_92x112"

    def __init__(self, root: Path, train_subjects: str = "1-30", test_subjects: str = "31-40",
                 folds: int = 10, pairs_per_fold: int = 30, seed: int = 0) -> None:
        self.root = Path(root)
        self.train_subjects = parse_ranges(train_subjects)
        self.test_subjects = parse_ranges(test_subjects)
        self.folds = folds
        self.pairs_per_fold = pairs_per_fold
        self.seed = seed

    def _identities(self, subjects: list[int]):
        found = {i.name: i for i in scan_identities(self.root)}
        out = []
        for s in subjects:
            name = f"s{s}"
            if name not in found:
                raise DataError(f"{self.root}: subject folder {name}/ not found; AT&T has s1..s40 "
                                f"(found {len(found)} subject folders) — adjust -o att.train_subjects / att.test_subjects")
            out.append(found[name])
        return out

    def train_set(self) -> ImageSet:
        keys, labels = [], []
        ids = self._identities(self.train_subjects)
        for label, ident in enumerate(ids):
            for f in ident.files:
                keys.append(str(f))
                labels.append(label)
        return ImageSet(keys=keys, labels=np.asarray(labels, np.int64), loader=FileLoader(),
                        identities=tuple(i.name for i in ids), aligned=self.aligned,
                        info={"source": str(self.root), "format": "att", "subjects": self.train_subjects})

    def verification(self) -> PairSet:
        ids = self._identities(self.test_subjects)
        numbers = {i.name: [n for n in i.numbers if n is not None] for i in ids}
        folds, warnings = generate_pairs(numbers, self.folds, self.pairs_per_fold, self.seed)
        label_of = {i.name: k for k, i in enumerate(ids)}
        index: dict[str, int] = {}
        keys: list[str] = []
        labels: list[int] = []
        pairs, same, fold_ids = [], [], []
        for k, fold in enumerate(folds):
            for p in fold:
                row = []
                for name, n in ((p.name1, p.n1), (p.name2, p.n2)):
                    f = str(resolve_image(self.root, name, n))
                    if f not in index:
                        index[f] = len(keys)
                        keys.append(f)
                        labels.append(label_of[name])
                    row.append(index[f])
                pairs.append(row)
                same.append(p.issame)
                fold_ids.append(k)
        images = ImageSet(keys=keys, labels=np.asarray(labels, np.int64), loader=FileLoader(),
                          identities=tuple(i.name for i in ids), aligned=self.aligned,
                          info={"source": str(self.root), "format": "att", "warnings": warnings})
        n = len(pairs)
        return PairSet(images=images, pairs=np.asarray(pairs, np.int64), issame=np.asarray(same),
                       folds=np.asarray(fold_ids, np.int64),
                       protocol=f"AT&T generated pairs ({n:,} pairs, {self.folds} folds, seed {self.seed})")

    def __repr__(self) -> str:
        return (f"Att({str(self.root)!r}, train=s{self.train_subjects[0]}-s{self.train_subjects[-1]}, "
                f"test=s{self.test_subjects[0]}-s{self.test_subjects[-1]})")


def build(opts: Any, path: Any = None) -> Att:
    root = require_path(path, "att", default_relative="att_faces")
    return Att(root, opts.train_subjects, opts.test_subjects, opts.folds, opts.pairs_per_fold, opts.seed)
