"""``fddb``: FDDB ellipse annotations (10 folds) as boxes.

``path`` is the folder holding ``FDDB-folds/`` (or that folder itself).  The
images are not shipped with the annotations: pass ``-o fddb.images=`` the
``originalPics`` folder; loading a sample without it raises a clear error.

Each sample keeps its ellipses (``info["ellipses"]``: major radius, minor
radius, angle, cx, cy) beside their bounding boxes, and the dataset names the
``fddb`` detection protocol: ``harness run --detector NAME --eval fddb=PATH``
scores the FDDB discrete ROC (``harness.tasks._fddb`` states the rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.detection import parse_fddb_ellipses
from harness.formats.images import read_image
from harness.types import Dataset, DetectionSample, DetectionSet

from facebench_plugins.datasets._common import parse_ranges, require_path

__all__ = ["Fddb", "build"]


class FddbLoader:
    def __init__(self, images: Path | None) -> None:
        self.images = images

    def __call__(self, key: str) -> np.ndarray:
        if self.images is None:
            raise DataError(f"FDDB image {key!r}: no images folder given; FDDB ships annotations only — "
                            "pass -o fddb.images=/path/to/originalPics")
        return read_image(self.images / f"{key}.jpg")


class Fddb(Dataset):
    name = "fddb"
    detection_protocol = "fddb"  # harness.types.ScoredDetectionData: discrete ROC on info["ellipses"]

    def __init__(self, root: Path, images: str = "", folds: str = "1-10") -> None:
        root = Path(root)
        self.folds_dir = root / "FDDB-folds" if (root / "FDDB-folds").is_dir() else root
        self.images = Path(images) if images else None
        self.fold_ids = parse_ranges(folds, "folds")

    def detection(self) -> DetectionSet:
        samples = []
        for k in self.fold_ids:
            f = self.folds_dir / f"FDDB-fold-{k:02d}-ellipseList.txt"
            for img in parse_fddb_ellipses(f):
                samples.append(DetectionSample(key=img.path, boxes=img.boxes, ignore=None,
                                               info={"fold": k, "ellipses": img.ellipses}))
        return DetectionSet(samples=samples, loader=FddbLoader(self.images),
                            protocol=f"FDDB folds {self.fold_ids[0]}-{self.fold_ids[-1]} "
                                     f"({len(samples)} images, ellipses as bounding boxes)")

    def __repr__(self) -> str:
        return f"Fddb({str(self.folds_dir)!r})"


def build(opts: Any, path: Any = None) -> Fddb:
    root = require_path(path, "fddb", default_relative="fddb")
    return Fddb(root, opts.images, opts.folds)
