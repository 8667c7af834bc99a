"""``aflw2000``: AFLW2000-3D (Zhu et al. 2016): ``imageNNNNN.jpg`` + ``imageNNNNN.mat``.

The 68 points are ``pt3d_68[:2].T`` (x, y of the 3D-fitted landmarks, so
self-occluded points are where the 3D face puts them, not on the visible
contour).  The face box is the tight box of those 68 points (3DDFA's rule);
the yaw of ``Pose_Para`` (degrees) is kept in each sample's ``info``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.types import LandmarkSample

from facebench_plugins.datasets._common import FileLoader, require_path
from facebench_plugins.datasets._landmark_options import LandmarkFolderOptions
from facebench_plugins.datasets._landmarks import LandmarkDataset, image_beside, limit, tight_box

__all__ = ["build", "read_aflw2000_mat"]

BOX_RULE = "tight box of the 68 ground-truth points (x, y of pt3d_68), as 3DDFA evaluates AFLW2000-3D"


def read_aflw2000_mat(path: Path) -> tuple[np.ndarray, float | None]:
    """(68, 2) points and the yaw in degrees (None when ``Pose_Para`` is absent)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable AFLW2000-3D .mat ({exc})") from None
    pts = np.asarray(mat.get("pt3d_68", np.zeros(0)), np.float64)
    if pts.shape != (3, 68) or not np.isfinite(pts).all():
        raise DataError(f"{path}: pt3d_68 has shape {pts.shape}; expected (3, 68) finite x, y, z rows")
    pose = np.asarray(mat.get("Pose_Para", np.zeros(0)), np.float64).reshape(-1)
    return pts[:2].T.copy(), (math.degrees(pose[1]) if pose.size >= 3 else None)


def build(options: LandmarkFolderOptions | None = None, path: str | None = None) -> LandmarkDataset:
    o = options or LandmarkFolderOptions()
    root = require_path(path, "aflw2000", "landmarks/aflw2000_prnet")
    mats = limit(sorted(root.glob("*.mat")), o.limit)
    samples = []
    for mat in mats:
        points, yaw = read_aflw2000_mat(mat)
        samples.append(LandmarkSample(str(image_beside(mat)), points, tight_box(points),
                                      {"yaw_degrees": yaw, "annotation": str(mat)}))
    return LandmarkDataset("aflw2000", samples, FileLoader(), "ibug_68",
                           f"AFLW2000-3D 68 points (pt3d_68), {len(samples)} images from {root}", BOX_RULE)
