"""Options of the built-in landmarkers (``-o <landmarker>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import check_range

__all__ = ["DcnnCascadeOptions", "DcnnTrainOptions", "DetectorPointsOptions", "DlibShapeOptions"]


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


@dataclass(frozen=True)
class DcnnCascadeOptions:
    """Options of ``dcnn_cascade`` at prediction time.

    :param weights: checkpoint written by ``harness train-landmarker dcnn_cascade``
        (required: no public weights ship with facebench).
    :param threads: torch intra-op threads (0 leaves torch's setting).
    """

    weights: str = ""
    threads: int = 0

    def __post_init__(self) -> None:
        check_range("threads", self.threads, 0, 256, integer=True)


@dataclass(frozen=True)
class DcnnTrainOptions:
    """How ``harness train-landmarker dcnn_cascade`` trains (flags of that command).

    :param steps: Adam steps for each level (level 1: F1, EN1, NM1 together; each refinement level).
    :param batch_size: faces per step.
    :param lr: Adam learning rate.
    :param augment: jittered copies drawn per training face (random flip, shift, scale, rotation).
    :param refine_levels: refinement levels after the global level (0-2; Sun et al. use 2).
    :param margin: the face square is the box's mean side grown by ``margin`` on each side.
    :param jitter: largest random shift of the box, as a fraction of its side (scale: the same, rotation:
        ``jitter`` x 100 degrees), so that boxes of other rules than the training set's still work.
    :param seed: seed of the augmentation and of torch.
    :param threads: torch intra-op threads (0 leaves torch's setting).
    """

    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    augment: int = 64
    refine_levels: int = 2
    margin: float = 0.2
    jitter: float = 0.08
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        check_range("steps", self.steps, 1, 10_000_000, integer=True)
        check_range("batch_size", self.batch_size, 1, 65_536, integer=True)
        check_range("lr", self.lr, 1e-7, 1.0)
        check_range("augment", self.augment, 1, 100_000, integer=True)
        check_range("refine_levels", self.refine_levels, 0, 2, integer=True)
        check_range("margin", self.margin, 0.0, 1.0)
        check_range("jitter", self.jitter, 0.0, 0.3)
        check_range("seed", self.seed, 0, 2**32 - 1, integer=True)
        check_range("threads", self.threads, 0, 256, integer=True)
