"""Options of the built-in detectors (``-o <detector>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import check_range

__all__ = ["CascadeCnnOptions", "DlibHogOptions", "DlibMmodOptions", "HaarOptions", "MtcnnOptions", "RetinafaceOptions", "YunetOptions"]


def _check_threshold(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class HaarOptions:
    """Options of ``haar`` (``cv2.CascadeClassifier.detectMultiScale3``).

    :param cascade: a file name in ``cv2.data.haarcascades`` or a path.
    :param scale_factor: pyramid step.
    :param min_neighbors: overlapping hits needed to keep a box.
    :param min_size: smallest face side in pixels.
    """

    cascade: str = "haarcascade_frontalface_default.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 20

    def __post_init__(self) -> None:
        if self.scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1, got {self.scale_factor}")
        if self.min_neighbors < 0 or self.min_size < 1:
            raise ValueError("min_neighbors must be >= 0 and min_size >= 1")
        check_range("haar.min_size", self.min_size, 1, 100_000, integer=True)


@dataclass(frozen=True)
class DlibHogOptions:
    """Options of ``dlib_hog``.

    :param upsample: times the image is doubled before detection (finds smaller faces).
    :param threshold: ``adjust_threshold`` of dlib's detector (lower finds more).
    :param landmarks: ``shape68`` runs the 68-point predictor for the five
        landmarks (eye centres from points 36–41 / 42–47, nose tip 30, mouth
        corners 48 / 54); ``none`` skips landmarks.
    :param shape_predictor: path overriding the located 68-point model.
    """

    upsample: int = 1
    threshold: float = 0.0
    landmarks: str = "shape68"
    shape_predictor: str = ""

    def __post_init__(self) -> None:
        check_range("upsample", self.upsample, 0, 4, integer=True)  # each doubles both sides
        if self.landmarks not in ("shape68", "none"):
            raise ValueError(f"landmarks must be 'shape68' or 'none', got {self.landmarks!r}")


@dataclass(frozen=True)
class DlibMmodOptions(DlibHogOptions):
    """Options of ``dlib_mmod`` (as ``dlib_hog``, plus the CNN's weights and batch size).

    :param weights: path overriding the located ``mmod_human_face_detector.dat``.
    :param batch_size: images of equal size run through the CNN together.
    """

    weights: str = ""
    batch_size: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("dlib_mmod.batch_size", self.batch_size, 1, 1024, integer=True)


@dataclass(frozen=True)
class MtcnnOptions:
    """Options of ``mtcnn`` (defaults are Zhang et al. 2016's / facenet-pytorch's).

    :param min_face: smallest face side in pixels (sets the first pyramid scale 12/min_face).
    :param factor: pyramid scale step.
    :param thresholds: P-Net, R-Net, O-Net score thresholds.
    :param nms: NMS IoU thresholds: P-Net per scale, P-Net merged, R-Net, O-Net.
    :param weights_dir: folder holding pnet.pt, rnet.pt, onet.pt (overrides the search).
    :param threads: torch intra-op threads (0 leaves torch's setting).
    :param batch_size: images run together by ``detect_batch`` (any sizes: P-Net groups same-size images, R-Net and O-Net take the boxes of the whole batch).
    """

    min_face: int = 20
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    nms: tuple[float, float, float, float] = (0.5, 0.7, 0.7, 0.7)
    weights_dir: str = ""
    threads: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.min_face < 12:
            raise ValueError(f"min_face must be >= 12 (P-Net's window), got {self.min_face}")
        if not 0.1 < self.factor < 1:
            raise ValueError(f"factor must be in (0.1, 1), got {self.factor}")
        check_range("mtcnn.batch_size", self.batch_size, 1, 1024, integer=True)
        check_range("mtcnn.threads", self.threads, 0, 1024, integer=True)
        if len(self.thresholds) != 3 or len(self.nms) != 4:
            raise ValueError("thresholds needs 3 values and nms 4 values")
        for t in (*self.thresholds, *self.nms):
            _check_threshold("thresholds and nms values", t)


@dataclass(frozen=True)
class RetinafaceOptions:
    """Options of ``retinaface`` (defaults follow biubug6's detect.py for visualisation).

    :param score_threshold: keep boxes scoring at least this (detect.py evaluates at 0.02).
    :param nms: NMS IoU threshold.
    :param top_k: boxes kept before NMS; ``keep_top_k``: after.
    :param scale: resize the image by this before detection (1 = original size).
    :param weights: path overriding the located ``mobilenet0.25_Final.pth``.
    :param threads: torch intra-op threads (0 leaves torch's setting).
    """

    score_threshold: float = 0.5
    nms: float = 0.4
    top_k: int = 5000
    keep_top_k: int = 750
    scale: float = 1.0
    weights: str = ""
    threads: int = 0

    def __post_init__(self) -> None:
        _check_threshold("score_threshold", self.score_threshold)
        _check_threshold("nms", self.nms)
        check_range("retinaface.scale", self.scale, 0, 8, low_open=True)
        check_range("retinaface.top_k", self.top_k, 1, 1_000_000, integer=True)
        check_range("retinaface.keep_top_k", self.keep_top_k, 1, 1_000_000, integer=True)
        check_range("retinaface.threads", self.threads, 0, 1024, integer=True)


@dataclass(frozen=True)
class YunetOptions:
    """Options of ``yunet`` (``cv2.FaceDetectorYN``).

    :param score_threshold: keep faces scoring at least this (OpenCV Zoo's demo: 0.9).
    :param nms: NMS IoU threshold.
    :param top_k: boxes kept before NMS.
    :param weights: path overriding the located ONNX file.
    """

    score_threshold: float = 0.6
    nms: float = 0.3
    top_k: int = 5000
    weights: str = ""

    def __post_init__(self) -> None:
        _check_threshold("score_threshold", self.score_threshold)
        _check_threshold("nms", self.nms)
        check_range("yunet.top_k", self.top_k, 1, 1_000_000, integer=True)


@dataclass(frozen=True)
class CascadeCnnOptions:
    """Options of ``cascade_cnn``.

    :param weights: checkpoint written by ``harness train-detector cascade_cnn``
        (required: no public weights exist).
    :param min_face: smallest face side in pixels.
    :param factor: pyramid scale step.
    :param thresholds: 12-, 24-, 48-net score thresholds.
    :param nms: NMS IoU after the 12-, 24- and 48-net stages.
    :param threads: torch intra-op threads (0 leaves torch's setting).
    """

    weights: str = ""
    min_face: int = 24
    factor: float = 0.709
    thresholds: tuple[float, float, float] = (0.5, 0.5, 0.5)
    nms: tuple[float, float, float] = (0.5, 0.5, 0.3)
    threads: int = 0

    def __post_init__(self) -> None:
        if self.min_face < 12:
            raise ValueError(f"min_face must be >= 12, got {self.min_face}")
        for t in (*self.thresholds, *self.nms):
            _check_threshold("thresholds and nms values", t)
