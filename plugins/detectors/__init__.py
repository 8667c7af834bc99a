"""Built-in detectors: specs only; implementations are imported when selected.

Each detector lives in its own module (``haar``, ``dlib_detectors``,
``mtcnn``, ``retinaface``, ``yunet``, ``cascade_cnn``); this package imports
no framework, so ``harness list`` stays light.

Every built detector has ``detect(image) -> harness.types.Detections`` for one
(H, W, 3) uint8 RGB image and ``detect_batch(images) -> list[Detections]``.
Landmarks, where given, are (N, 5, 2): left eye, right eye, nose, left and
right mouth corner, left/right as seen in the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hookspecs import hookimpl
from harness.specs import DetectorSpec, WeightsSpec

__all__ = [
    "CascadeCnnOptions",
    "DlibHogOptions",
    "DlibMmodOptions",
    "HaarOptions",
    "MtcnnOptions",
    "RetinafaceOptions",
    "YunetOptions",
    "WEIGHTS",
    "register_detectors",
]

_DLIB_SOURCE = "dlib.net (Davis King); PyPI face-recognition-models 0.3.0"

#: Every weights file a built-in detector may load, by short name.
WEIGHTS = {
    "dlib_shape5": WeightsSpec(
        filename="shape_predictor_5_face_landmarks.dat", sha256="c4b1e9804792707d",
        env="FACEBENCH_DLIB_SHAPE5", package="face_recognition_models", license="CC0-1.0",
        source=_DLIB_SOURCE,
    ),
    "dlib_shape68": WeightsSpec(
        filename="shape_predictor_68_face_landmarks.dat", sha256="fbdc2cb80eb9aa7a",
        env="FACEBENCH_DLIB_SHAPE68", package="face_recognition_models",
        license="CC0-1.0 as shipped by face-recognition-models (trained on iBUG 300-W, whose "
        "terms exclude commercial use)", source=_DLIB_SOURCE,
    ),
    "dlib_mmod": WeightsSpec(
        filename="mmod_human_face_detector.dat", sha256="4cb19393e2fbaf2b",
        env="FACEBENCH_DLIB_MMOD", package="face_recognition_models", license="CC0-1.0",
        source=_DLIB_SOURCE,
    ),
    "mtcnn_pnet": WeightsSpec(
        filename="pnet.pt", sha256="a2a71925e0b9996a", env="FACEBENCH_MTCNN_DIR",
        data_path="weights/mtcnn/pnet.pt", license="MIT", source="timesler/facenet-pytorch 2.6.0",
    ),
    "mtcnn_rnet": WeightsSpec(
        filename="rnet.pt", sha256="bbb937de72efc9ef", env="FACEBENCH_MTCNN_DIR",
        data_path="weights/mtcnn/rnet.pt", license="MIT", source="timesler/facenet-pytorch 2.6.0",
    ),
    "mtcnn_onet": WeightsSpec(
        filename="onet.pt", sha256="165bfbe42940416c", env="FACEBENCH_MTCNN_DIR",
        data_path="weights/mtcnn/onet.pt", license="MIT", source="timesler/facenet-pytorch 2.6.0",
    ),
    "retinaface_mnet025": WeightsSpec(
        filename="mobilenet0.25_Final.pth", sha256="ed6fa7d45a5179f0", env="FACEBENCH_RETINAFACE",
        data_path="weights/retinaface/mobilenet0.25_Final.pth", license="MIT",
        source="biubug6/Face-Detector-1MB-with-landmark (= biubug6/Pytorch_Retinaface)",
    ),
    "yunet": WeightsSpec(
        filename="face_detection_yunet_2023mar.onnx", sha256="8f2383e4dd3cfbb4", env="FACEBENCH_YUNET",
        data_path="weights/yunet/face_detection_yunet_2023mar.onnx", license="Apache-2.0",
        source="ShiqiYu/libfacedetection.train (OpenCV Zoo face_detection_yunet)",
    ),
}


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
        if self.upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {self.upsample}")
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


@dataclass(frozen=True)
class MtcnnOptions:
    """Options of ``mtcnn`` (defaults are Zhang et al. 2016's / facenet-pytorch's).

    :param min_face: smallest face side in pixels (sets the first pyramid scale 12/min_face).
    :param factor: pyramid scale step.
    :param thresholds: P-Net, R-Net, O-Net score thresholds.
    :param nms: NMS IoU thresholds: P-Net per scale, P-Net merged, R-Net, O-Net.
    :param weights_dir: folder holding pnet.pt, rnet.pt, onet.pt (overrides the search).
    :param threads: torch intra-op threads (0 leaves torch's setting).
    :param batch_size: images run together by ``detect_batch`` (same-size images only).
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
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")


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


_ZHANG = (
    "K. Zhang, Z. Zhang, Z. Li, Y. Qiao, 'Joint Face Detection and Alignment Using "
    "Multitask Cascaded Convolutional Networks', IEEE SPL 2016"
)


@hookimpl
def register_detectors():
    return [
        DetectorSpec(
            name="haar",
            summary="OpenCV Viola-Jones Haar cascade (frontal faces; no landmarks).",
            factory="facebench_plugins.detectors.haar:build",
            framework="opencv",
            options=HaarOptions,
            paper="P. Viola, M. Jones, 'Rapid Object Detection using a Boosted Cascade of "
            "Simple Features', CVPR 2001; R. Lienhart, J. Maydt, ICIP 2002",
            license="BSD-3-Clause / Intel licence (OpenCV cascades)",
            landmarks=False,
            meta={"scores": "cascade level weights (not probabilities)"},
        ),
        DetectorSpec(
            name="dlib_hog",
            summary="dlib HOG + linear SVM frontal detector; landmarks from the 68-point predictor.",
            factory="facebench_plugins.detectors.dlib_detectors:build_hog",
            framework="dlib",
            options=DlibHogOptions,
            paper="N. Dalal, B. Triggs, CVPR 2005; landmarks: V. Kazemi, J. Sullivan, CVPR 2014",
            license="Boost Software License (dlib); models CC0-1.0",
            weights=(WEIGHTS["dlib_shape68"],),
            meta={
                "landmarks_from": "shape_predictor_68_face_landmarks: eye centres = mean of "
                "points 36-41 / 42-47, nose tip 30, mouth corners 48 / 54 (dlib's 5-point "
                "model predicts no mouth corners)",
                "scores": "SVM margin (not a probability)",
            },
        ),
        DetectorSpec(
            name="dlib_mmod",
            summary="dlib max-margin object detection CNN; landmarks from the 68-point predictor.",
            factory="facebench_plugins.detectors.dlib_detectors:build_mmod",
            framework="dlib",
            options=DlibMmodOptions,
            paper="D. E. King, 'Max-Margin Object Detection', arXiv:1502.00046, 2015",
            license="Boost Software License (dlib); models CC0-1.0",
            weights=(WEIGHTS["dlib_mmod"], WEIGHTS["dlib_shape68"]),
            meta={
                "landmarks_from": "shape_predictor_68_face_landmarks (as dlib_hog)",
                "scores": "MMOD detection confidence (not a probability)",
            },
        ),
        DetectorSpec(
            name="mtcnn",
            summary="MTCNN P-Net/R-Net/O-Net cascade (PyTorch, facenet-pytorch's weights), 5 landmarks.",
            factory="facebench_plugins.detectors.mtcnn:build",
            framework="torch",
            options=MtcnnOptions,
            paper=_ZHANG,
            license="MIT (weights, via timesler/facenet-pytorch)",
            weights=(WEIGHTS["mtcnn_pnet"], WEIGHTS["mtcnn_rnet"], WEIGHTS["mtcnn_onet"]),
            meta={"reference_implementation": "facenet-pytorch 2.6.0 MTCNN", "scores": "O-Net face probability"},
        ),
        DetectorSpec(
            name="retinaface",
            summary="RetinaFace with a MobileNet-0.25 backbone (PyTorch, biubug6 weights), 5 landmarks.",
            factory="facebench_plugins.detectors.retinaface:build",
            framework="torch",
            options=RetinafaceOptions,
            paper="J. Deng, J. Guo, E. Ververas, I. Kotsia, S. Zafeiriou, 'RetinaFace: "
            "Single-shot Multi-level Face Localisation in the Wild', CVPR 2020",
            license="MIT (biubug6/Pytorch_Retinaface weights)",
            weights=(WEIGHTS["retinaface_mnet025"],),
            meta={
                "priors": {"min_sizes": [[10, 20], [32, 64], [128, 256]], "steps": [8, 16, 32],
                           "variance": [0.1, 0.2]},
                "input": "BGR minus (104, 117, 123)",
                "scores": "softmax face probability",
            },
        ),
        DetectorSpec(
            name="yunet",
            summary="YuNet (libfacedetection) through cv2.FaceDetectorYN, 5 landmarks.",
            factory="facebench_plugins.detectors.yunet:build",
            framework="opencv",
            options=YunetOptions,
            paper="W. Wu, H. Peng, S. Yu, 'YuNet: A Tiny Millisecond-level Face Detector', "
            "Machine Intelligence Research 2023",
            license="Apache-2.0",
            weights=(WEIGHTS["yunet"],),
            meta={"scores": "face score"},
        ),
        DetectorSpec(
            name="cascade_cnn",
            summary="Li et al. 2015 12/24/48-net CNN cascade with calibration nets; trained here "
            "(no public weights): results depend on the training data given.",
            factory="facebench_plugins.detectors.cascade_cnn:build",
            framework="torch",
            options=CascadeCnnOptions,
            paper="H. Li, Z. Lin, X. Shen, J. Brandt, G. Hua, 'A Convolutional Neural Network "
            "Cascade for Face Detection', CVPR 2015",
            license="facebench (trained by the user; weights carry their training data's terms)",
            landmarks=False,
            meta={
                "weights": "none published: train with `harness train-detector cascade_cnn "
                "--data wider=PATH -o OUT` and pass -o cascade_cnn.weights=OUT",
                "results_depend_on": "the training data and steps given to train_cascade",
                "trainer": "facebench_plugins.detectors.cascade_cnn:train_cascade",
            },
        ),
    ]
