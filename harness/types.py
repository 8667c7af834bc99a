"""Data records that plugins and tasks exchange (numpy only).

Images are always ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, **RGB**.

* A dataset plugin's built object offers one or more of
  :meth:`train_set`, :meth:`verification`, :meth:`detection`, ... (see
  :class:`Dataset`).
* A detector's ``detect(image)`` returns :class:`Detections`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Dataset", "DetectionSample", "DetectionSet", "Detections", "ImageSet", "PairSet"]


@dataclass
class Detections:
    """Faces found in one image.

    :param boxes: (N, 4) float32, x1, y1, x2, y2 in pixels.
    :param scores: (N,) float32 confidence.
    :param landmarks: (N, 5, 2) float32 — left eye, right eye, nose, left and
        right mouth corner (image left/right) — or ``None``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
            if len(self.landmarks) != len(self.boxes):
                raise ValueError(f"{len(self.boxes)} boxes but {len(self.landmarks)} landmark sets")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, with_landmarks: bool = True) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2)) if with_landmarks else None)


@dataclass
class ImageSet:
    """Labelled face images, loaded lazily.

    :param keys: one stable string per image (its path, or record index).
    :param labels: (N,) int64 identity index, -1 when unknown.
    :param loader: ``loader(key) -> RGB uint8 image``.
    :param identities: label -> identity name.
    :param aligned: name of the alignment template the images are already
        cropped to (``"arcface_112"``), or ``None`` for raw photos that need
        detection and alignment.
    :param synthetic: generated rather than real faces (stated in reports).
    """

    keys: Sequence[str]
    labels: np.ndarray
    loader: Callable[[str], np.ndarray]
    identities: Sequence[str] = ()
    aligned: str | None = None
    synthetic: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.keys) != len(self.labels):
            raise ValueError(f"{len(self.keys)} keys but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, i: int) -> np.ndarray:
        return self.loader(self.keys[i])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


@dataclass
class PairSet:
    """Verification pairs over an :class:`ImageSet` (the LFW View 2 shape).

    :param pairs: (P, 2) int indices into ``images``.
    :param issame: (P,) bool, True for genuine pairs.
    :param folds: (P,) int fold id (0-based), e.g. 10 folds of 600 for LFW.
    :param protocol: a human name, e.g. ``"LFW View 2 (6,000 pairs, 10 folds)"``.
    """

    images: ImageSet
    pairs: np.ndarray
    issame: np.ndarray
    folds: np.ndarray
    protocol: str = ""

    def __post_init__(self) -> None:
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.issame = np.asarray(self.issame, dtype=bool).reshape(-1)
        self.folds = np.asarray(self.folds, dtype=np.int64).reshape(-1)
        if not (len(self.pairs) == len(self.issame) == len(self.folds)):
            raise ValueError("pairs, issame and folds must have the same length")

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, folds: Sequence[int]) -> "PairSet":
        """Only the pairs of the given folds (e.g. one LFW fold in CI)."""
        keep = np.isin(self.folds, np.asarray(list(folds)))
        return PairSet(self.images, self.pairs[keep], self.issame[keep], self.folds[keep], self.protocol)


@dataclass
class DetectionSample:
    """One image with ground-truth boxes (x1, y1, x2, y2) and flags."""

    key: str
    boxes: np.ndarray
    ignore: np.ndarray | None = None  # (N,) bool, True = not counted (WIDER keep-lists)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectionSet:
    samples: Sequence[DetectionSample]
    loader: Callable[[str], np.ndarray]
    protocol: str = ""


class Dataset:
    """What a dataset plugin's factory returns.  Implement the views the
    layout supports; the others raise with a clear message."""

    name = "dataset"

    def _missing(self, what: str) -> "NoReturn":  # type: ignore[name-defined]
        from harness.errors import DataError

        raise DataError(f"dataset {self.name!r} has no {what} data")

    def train_set(self) -> ImageSet:
        """Labelled images to train on."""
        self._missing("training")

    def verification(self) -> PairSet:
        """Verification pairs with folds."""
        self._missing("verification")

    def detection(self) -> DetectionSet:
        """Images with ground-truth face boxes."""
        self._missing("detection")
