"""Options of the built-in landmarkers (``-o <landmarker>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import check_range

__all__ = ["DetectorPointsOptions", "DlibShapeOptions"]


@dataclass(frozen=True)
class DlibShapeOptions:
    """Options of ``dlib_68`` and ``dlib_5``.

    :param shape_predictor: path overriding the located ``shape_predictor_*.dat``.
    """

    shape_predictor: str = ""


@dataclass(frozen=True)
class DetectorPointsOptions:
    """Options of the detectors' five points used as landmarkers (``mtcnn``, ``retinaface``, ``yunet``).

    The detector runs on a crop of the box grown by ``margin`` × its width and
    height on every side (clipped to the image); of the faces it finds, the one
    overlapping the given box most gives the five points.  A box where it finds
    no face overlapping it by at least ``min_iou`` gets NaN points (a miss,
    counted as a failure by the landmarks task).

    :param margin: growth of the box on each side, as a fraction of its size.
    :param min_iou: the least IoU between the given box and the detection used.
    """

    margin: float = 0.5
    min_iou: float = 0.1

    def __post_init__(self) -> None:
        check_range("margin", self.margin, 0.0, 4.0)
        check_range("min_iou", self.min_iou, 0.0, 1.0)
