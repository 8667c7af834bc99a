"""Options of the landmark dataset readers (``-o <dataset>.<key>=<value>``); no framework here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.specs import check_range

__all__ = ["CocoLandmarksOptions", "CofwOptions", "LandmarkFolderOptions", "WflwOptions"]


@dataclass(frozen=True)
class LandmarkFolderOptions:
    """Options of ``aflw2000`` and ``pts``.

    :param limit: read only the first N faces (sorted by file name); 0 reads all.
    """

    limit: int = 0

    def __post_init__(self) -> None:
        check_range("limit", self.limit, 0, 10**9, integer=True)


@dataclass(frozen=True)
class WflwOptions(LandmarkFolderOptions):
    """Options of ``wflw``.

    :param annotations: the annotation text file (default: ``list_98pt_rect_attr_test.txt`` found under the path).
    :param images: the image folder (default: ``WFLW_images`` under the path, else the path).
    """

    annotations: str = ""
    images: str = ""


@dataclass(frozen=True)
class CofwOptions(LandmarkFolderOptions):
    """Options of ``cofw``.

    :param split: ``test`` reads IsT / phisT / bboxesT, ``train`` IsTr / phisTr / bboxesTr.
    """

    split: Literal["test", "train"] = "test"


@dataclass(frozen=True)
class CocoLandmarksOptions(LandmarkFolderOptions):
    """Options of ``coco_landmarks``.

    :param annotations: the JSON file when the folder holds several.
    """

    annotations: str = ""
