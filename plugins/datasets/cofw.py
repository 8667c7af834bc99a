"""``cofw``: COFW (Burgos-Artizzu et al., RCPR, ICCV 2013) ``.mat`` files.

``COFW_test.mat`` / ``COFW_train.mat`` (MATLAB v5, read with scipy) hold the
images as a cell array (``IsT`` / ``IsTr``, grayscale or RGB uint8), the 29
points as rows of 87 numbers (``phisT`` / ``phisTr``: 29 x, 29 y, 29
occlusion flags) and the face boxes ``x y w h`` (``bboxesT`` / ``bboxesTr``).
The face box is the annotation's box (the points' tight box when absent).
MATLAB v7.3 (HDF5) files, such as ``COFW_test_color.mat``, are refused with
how to convert them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.types import LandmarkSample

from facebench_plugins.datasets._common import require_path
from facebench_plugins.datasets._landmark_options import CofwOptions
from facebench_plugins.datasets._landmarks import ArrayLoader, LandmarkDataset, limit, tight_box, xywh_box

__all__ = ["build", "read_cofw_mat"]

_KEYS = {"test": ("IsT", "phisT", "bboxesT"), "train": ("IsTr", "phisTr", "bboxesTr")}


def _load(path: Path) -> dict:
    import scipy.io

    with open(path, "rb") as fh:
        if b"MATLAB 7.3" in fh.read(128):
            raise DataError(f"{path}: a MATLAB v7.3 (HDF5) file; save it as v5 in MATLAB/Octave "
                            "(save -v7 out.mat IsT phisT bboxesT) and point cofw at that file")
    try:
        return scipy.io.loadmat(str(path))
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable COFW .mat ({exc})") from None


def read_cofw_mat(path: Path, split: str = "test") -> tuple[list, np.ndarray, np.ndarray, np.ndarray | None]:
    """Images, (N, 29, 2) points, (N, 29) occlusion flags and (N, 4) x y w h boxes (or None)."""
    mat = _load(path)
    ki, kp, kb = _KEYS[split]
    if ki not in mat or kp not in mat:
        raise DataError(f"{path}: no {ki} / {kp}; expected a COFW {split} file (keys {', '.join(_KEYS[split])})")
    images = [np.asarray(x) for x in np.asarray(mat[ki], dtype=object).reshape(-1)]
    phis = np.asarray(mat[kp], np.float64)
    if phis.ndim != 2 or phis.shape[1] != 87 or len(phis) != len(images):
        raise DataError(f"{path}: {kp} has shape {phis.shape}; expected ({len(images)}, 87): 29 x, 29 y, 29 flags")
    points = np.stack([phis[:, :29], phis[:, 29:58]], axis=-1)
    boxes = np.asarray(mat[kb], np.float64).reshape(-1, 4) if kb in mat else None
    if boxes is not None and len(boxes) != len(images):
        raise DataError(f"{path}: {len(boxes)} boxes in {kb} but {len(images)} images")
    return images, points, phis[:, 58:], boxes


def build(options: CofwOptions | None = None, path: str | None = None) -> LandmarkDataset:
    o = options or CofwOptions()
    root = require_path(path, "cofw")
    mat = root if root.is_file() else next(iter(sorted(root.glob(f"COFW_{o.split}*.mat"))), None)
    if mat is None:
        raise DataError(f"{root}: no COFW_{o.split}*.mat; give the .mat file as the path")
    images, points, occluded, boxes = read_cofw_mat(mat, o.split)
    samples = [LandmarkSample(f"{mat}#{i}", points[i], xywh_box(boxes[i]) if boxes is not None
                              else tight_box(points[i]), {"occluded": occluded[i].astype(bool).tolist()})
               for i in range(len(images))]
    return LandmarkDataset("cofw", limit(samples, o.limit), ArrayLoader(str(mat), images), "cofw_29",
                           f"COFW {o.split} 29 points, {len(limit(samples, o.limit))} faces from {mat.name}",
                           "the annotation's box (x y w h)" if boxes is not None else "tight box of the points")
