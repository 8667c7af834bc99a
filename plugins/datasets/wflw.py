"""``wflw``: WFLW annotation text (Wu et al. 2018, ``list_98pt_rect_attr_*.txt``).

One face per line, 207 fields: 196 numbers (x, y of the 98 points), the box
``x_min y_min x_max y_max``, six 0/1 attributes (pose, expression,
illumination, make-up, occlusion, blur) and the image path relative to
``WFLW_images/``.  The face box is the annotation's box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.types import LandmarkSample

from facebench_plugins.datasets._common import FileLoader, require_path
from facebench_plugins.datasets._landmark_options import WflwOptions
from facebench_plugins.datasets._landmarks import LandmarkDataset, limit

__all__ = ["ATTRIBUTES", "build", "parse_wflw_line"]

ATTRIBUTES = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
BOX_RULE = "the annotation's box (x_min y_min x_max y_max of each WFLW line)"


def parse_wflw_line(line: str, where: str) -> tuple[np.ndarray, np.ndarray, dict, str]:
    """(98, 2) points, the box, the attributes and the image name of one WFLW line."""
    parts = line.split()
    if len(parts) != 207:
        raise DataError(f"{where}: {len(parts)} fields; a WFLW line has 207 (196 coordinates, 4 box, "
                        "6 attributes, the image path)")
    try:
        nums = np.array([float(v) for v in parts[:200]], np.float64)
        attrs = dict(zip(ATTRIBUTES, (int(v) for v in parts[200:206])))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}; the first 206 fields must be numbers") from None
    if not np.isfinite(nums).all():
        raise DataError(f"{where}: non-finite coordinates")
    return nums[:196].reshape(98, 2), nums[196:200], attrs, parts[206]


def _annotation_file(root: Path, given: str) -> Path:
    if given:
        p = Path(given) if Path(given).is_absolute() else root / given
        if not p.is_file():
            raise DataError(f"wflw annotations {p} not found")
        return p
    if root.is_file():
        return root
    found = sorted(root.rglob("list_98pt_rect_attr_test.txt")) or sorted(root.rglob("list_98pt_rect_attr_*.txt"))
    if not found:
        raise DataError(f"{root}: no WFLW annotation file (list_98pt_rect_attr_test.txt); "
                        "give -o wflw.annotations=FILE")
    return found[0]


def build(options: WflwOptions | None = None, path: str | None = None) -> LandmarkDataset:
    o = options or WflwOptions()
    root = require_path(path, "wflw")
    ann = _annotation_file(root, o.annotations)
    base = root if root.is_dir() else root.parent
    images = Path(o.images) if o.images else next(
        (d for d in (base / "WFLW_images", base.parent / "WFLW_images") if d.is_dir()), base)
    samples = []
    lines = ann.read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        points, box, attrs, name = parse_wflw_line(line, f"{ann}, line {i}")
        samples.append(LandmarkSample(str(images / name), points, box, {"attributes": attrs}))
    samples = limit(samples, o.limit)
    return LandmarkDataset("wflw", samples, FileLoader(), "wflw_98",
                           f"WFLW 98 points, {len(samples)} faces from {ann.name}", BOX_RULE)
