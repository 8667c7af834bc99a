"""``pts``: iBUG ``.pts`` annotations (300-W, 300-VW, LFPW, HELEN, AFW, IBUG).

Every ``*.pts`` under the path, recursively, with the image of the same stem
beside it — or, in 300-VW's layout (``<clip>/annot/NNNNNN.pts``), in the
sibling ``imgs/`` folder.  Coordinates are kept as written (the files are
1-based; facebench's readers of the same faces in other formats agree with
them).  The face box is the tight box of the points.
"""

from __future__ import annotations

from harness.types import LandmarkSample

from facebench_plugins.datasets._common import FileLoader, require_path
from facebench_plugins.datasets._landmark_options import LandmarkFolderOptions
from facebench_plugins.datasets._landmarks import (LandmarkDataset, image_beside, limit, parse_pts, scheme_for,
                                                   tight_box)

__all__ = ["build"]

BOX_RULE = "tight box of the ground-truth points"


def build(options: LandmarkFolderOptions | None = None, path: str | None = None) -> LandmarkDataset:
    from harness.errors import DataError

    o = options or LandmarkFolderOptions()
    root = require_path(path, "pts")
    files = limit(sorted(root.rglob("*.pts")) if root.is_dir() else [root], o.limit)
    samples, schemes = [], set()
    for f in files:
        points = parse_pts(f)
        schemes.add(scheme_for(len(points), f))
        image = image_beside(f, [f.parent.parent / "imgs"] if f.parent.name == "annot" else [])
        samples.append(LandmarkSample(str(image), points, tight_box(points), {"annotation": str(f)}))
    if len(schemes) > 1:
        raise DataError(f"{root}: the .pts files mix point counts ({sorted(schemes)}); give one markup per folder")
    scheme = schemes.pop() if schemes else "ibug_68"
    return LandmarkDataset("pts", samples, FileLoader(), scheme,
                           f"iBUG .pts ({scheme}), {len(samples)} faces from {root}", BOX_RULE)
