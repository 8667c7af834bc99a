"""What the landmark dataset readers share: schemes by point count, the iBUG ``.pts`` parser,
boxes, picklable loaders and the dataset object (``landmarks()`` view)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import DataError
from harness.types import Dataset, LandmarkSample, LandmarkSet

__all__ = ["IMAGE_EXTS", "SCHEME_BY_COUNT", "ArrayLoader", "LandmarkDataset", "image_beside", "limit",
           "parse_pts", "scheme_for", "tight_box", "xywh_box"]

#: annotation point count -> scheme (harness.metrics.landmarks.SCHEMES)
SCHEME_BY_COUNT = {68: "ibug_68", 98: "wflw_98", 29: "cofw_29", 19: "aflw_19", 106: "lapa_106", 5: "five"}
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def scheme_for(n: int, where: Any) -> str:
    try:
        return SCHEME_BY_COUNT[n]
    except KeyError:
        raise DataError(f"{where}: {n} landmarks per face; expected one of "
                        f"{', '.join(map(str, sorted(SCHEME_BY_COUNT)))} (68 iBUG, 98 WFLW, 29 COFW, 19 AFLW, "
                        "106 LaPa, 5)") from None


def tight_box(points: np.ndarray) -> np.ndarray:
    """x1, y1, x2, y2 of the points' bounding box."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return np.r_[p.min(axis=0), p.max(axis=0)]


def xywh_box(b: Sequence[float]) -> np.ndarray:
    x, y, w, h = (float(v) for v in b)
    return np.array([x, y, x + w, y + h])


def parse_pts(path: Path) -> np.ndarray:
    """(n_points, 2) from an iBUG ``.pts`` file (``version``, ``n_points``, ``{``, x y rows, ``}``).

    The file's coordinates are 1-based (Matlab); they are returned as written.
    """
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    lines = [ln for ln in lines if ln]
    head = {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip() for ln in lines if ":" in ln}
    try:
        n = int(head["n_points"])
        start = lines.index("{") + 1
        end = lines.index("}", start)
        pts = np.array([[float(v) for v in ln.split()] for ln in lines[start:end]], np.float64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: not an iBUG .pts file ({exc}); expected 'n_points: N', '{{', N 'x y' rows, "
                        "'}'") from None
    if pts.shape != (n, 2) or not np.isfinite(pts).all():
        raise DataError(f"{path}: n_points says {n} but the block holds {pts.shape[0]} finite 'x y' rows")
    return pts


def image_beside(annotation: Path, folders: Sequence[Path] = ()) -> Path:
    """The image with ``annotation``'s stem, in its folder or one of ``folders``."""
    for folder in (annotation.parent, *folders):
        for ext in IMAGE_EXTS:
            for cand in (folder / (annotation.stem + ext), folder / (annotation.stem + ext.upper())):
                if cand.is_file():
                    return cand
    raise DataError(f"{annotation}: no image {annotation.stem}.jpg/.png beside it"
                    + (f" or in {', '.join(map(str, folders))}" if folders else ""))


def limit(samples: list, n: int) -> list:
    return samples[:n] if n else samples


class ArrayLoader:
    """``loader(key)`` for keys ``"<source>#<i>"`` over images held in memory (a .mat cell array)."""

    def __init__(self, source: str, images: Sequence[np.ndarray]) -> None:
        self.source = source
        self.images = images

    def __call__(self, key: str) -> np.ndarray:
        img = np.asarray(self.images[int(str(key).rsplit("#", 1)[1])])
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise DataError(f"{key}: image is {img.dtype} {img.shape}; expected (H, W) or (H, W, 3) uint8")
        return np.ascontiguousarray(img)


class LandmarkDataset(Dataset):
    """A set of faces with ground-truth landmarks (the ``landmarks()`` view)."""

    def __init__(self, name: str, samples: list[LandmarkSample], loader: Any, scheme: str, protocol: str,
                 box_rule: str) -> None:
        if not samples:
            raise DataError(f"dataset {name!r}: no annotated faces found ({protocol})")
        self.name = name
        self._set = LandmarkSet(samples, loader, scheme, protocol, box_rule)

    def landmarks(self) -> LandmarkSet:
        return self._set
