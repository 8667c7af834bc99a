"""``lfw``: LFW identity folders + ``pairs.txt`` (View 2).

Accepted layouts (``path``):

* a folder holding ``pairs.txt`` and ``lfw_funneled/`` (scikit-learn's
  ``lfw_home``; also ``lfw/`` or ``lfw-deepfunneled/``), or its parent
  ``data_home`` holding ``lfw_home/``;
* a folder holding ``pairs.txt`` and the identity folders themselves;
* a pairs file, with the images beside it as above;
* nothing: ``FACEBENCH_DATA/lfw_home``.

The layouts are resolved by :func:`harness.formats.lfw_layout.find_lfw`,
the one finder ``harness data inspect`` uses too.

A pair's ``name i`` resolves to ``name/name_%04d.jpg`` (or ``name/i.<ext>``),
never to the i-th file of a folder listing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.folders import resolve_image
from harness.formats.lfw_layout import locate_lfw
from harness.formats.pairs import parse_pairs
from harness.types import Dataset, ImageSet, PairSet

from facebench_plugins.datasets._common import FileLoader, require_path

__all__ = ["Lfw", "build", "locate_lfw"]


class Lfw(Dataset):
    name = "lfw"

    def __init__(self, pairs_file: Path, image_dir: Path, skip_bad: bool = False) -> None:
        self.pairs_file = Path(pairs_file)
        self.image_dir = Path(image_dir)
        self.skip_bad = skip_bad

    def verification(self) -> PairSet:
        parsed = parse_pairs(self.pairs_file, skip_bad=self.skip_bad)
        skipped = list(parsed.skipped)
        index: dict[Path, int] = {}
        keys: list[str] = []
        labels: list[int] = []
        names: dict[str, int] = {}
        pairs, issame, folds = [], [], []
        for p in parsed.pairs:
            where = f"{self.pairs_file}, line {p.line}"
            try:
                f1 = resolve_image(self.image_dir, p.name1, p.n1, where)
                f2 = resolve_image(self.image_dir, p.name2, p.n2, where)
            except DataError as exc:
                if not self.skip_bad:
                    raise
                skipped.append(str(exc))
                continue
            ids = []
            for f, name in ((f1, p.name1), (f2, p.name2)):
                if f not in index:
                    index[f] = len(keys)
                    keys.append(str(f))
                    labels.append(names.setdefault(name, len(names)))
                ids.append(index[f])
            pairs.append(ids)
            issame.append(p.issame)
            folds.append(p.fold)
        images = ImageSet(keys=keys, labels=np.asarray(labels, np.int64), loader=FileLoader(),
                          identities=tuple(names), aligned=None,
                          info={"source": str(self.image_dir), "pairs_file": str(self.pairs_file),
                                "format": "lfw", "skipped": skipped})
        protocol = parsed.protocol if not skipped else f"{parsed.protocol}, {len(skipped)} skipped"
        return PairSet(images=images, pairs=np.asarray(pairs, np.int64).reshape(-1, 2),
                       issame=np.asarray(issame, bool), folds=np.asarray(folds, np.int64),
                       protocol=protocol)

    def __repr__(self) -> str:
        return f"Lfw(pairs={str(self.pairs_file)!r}, images={str(self.image_dir)!r})"


def build(opts: Any, path: Any = None) -> Lfw:
    root = require_path(path, "lfw", default_relative="lfw_home")
    pairs_file, image_dir = locate_lfw(root, opts.pairs, opts.images)
    return Lfw(pairs_file, image_dir, opts.skip_bad)
