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

from harness.hookspecs import hookimpl
from harness.specs import DetectorSpec, WeightsSpec

from facebench_plugins.detectors.options import (
    CascadeCnnOptions,
    DlibHogOptions,
    DlibMmodOptions,
    HaarOptions,
    MtcnnOptions,
    RetinafaceOptions,
    YunetOptions,
)

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
        filename="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        env="FACEBENCH_DLIB_SHAPE5", package="face_recognition_models", license="CC0-1.0",
        source=_DLIB_SOURCE,
    ),
    "dlib_shape68": WeightsSpec(
        filename="shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        env="FACEBENCH_DLIB_SHAPE68", package="face_recognition_models",
        license="CC0-1.0 as shipped by face-recognition-models (trained on iBUG 300-W, whose "
        "terms exclude commercial use)", source=_DLIB_SOURCE,
    ),
    "dlib_mmod": WeightsSpec(
        filename="mmod_human_face_detector.dat",
        sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
        env="FACEBENCH_DLIB_MMOD", package="face_recognition_models", license="CC0-1.0",
        source=_DLIB_SOURCE,
    ),
    "mtcnn_pnet": WeightsSpec(
        filename="pnet.pt",
        sha256="a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        env="FACEBENCH_MTCNN_DIR",
        data_path="weights/mtcnn/pnet.pt", license="MIT", source="timesler/facenet-pytorch 2.6.0",
    ),
    "mtcnn_rnet": WeightsSpec(
        filename="rnet.pt",
        sha256="bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        env="FACEBENCH_MTCNN_DIR",
        data_path="weights/mtcnn/rnet.pt", license="MIT", source="timesler/facenet-pytorch 2.6.0",
    ),
    "mtcnn_onet": WeightsSpec(
        filename="onet.pt",
        sha256="165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
        env="FACEBENCH_MTCNN_DIR",
        data_path="weights/mtcnn/onet.pt", license="MIT", source="timesler/facenet-pytorch 2.6.0",
    ),
    "retinaface_mnet025": WeightsSpec(
        filename="mobilenet0.25_Final.pth",
        sha256="ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1",
        env="FACEBENCH_RETINAFACE",
        data_path="weights/retinaface/mobilenet0.25_Final.pth", license="MIT",
        source="biubug6/Face-Detector-1MB-with-landmark (= biubug6/Pytorch_Retinaface)",
    ),
    "yunet": WeightsSpec(
        filename="face_detection_yunet_2023mar.onnx",
        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        env="FACEBENCH_YUNET",
        data_path="weights/yunet/face_detection_yunet_2023mar.onnx", license="Apache-2.0",
        source="ShiqiYu/libfacedetection.train (OpenCV Zoo face_detection_yunet)",
    ),
}


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
                "default_for": ("inpainting",),
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
            meta={"reference_implementation": "facenet-pytorch 2.6.0 MTCNN", "scores": "O-Net face probability",
                  "default_for": ("recognition",)},
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
                "default_for": ("liveness",),
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
