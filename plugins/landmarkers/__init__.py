"""Built-in landmarkers: specs only; implementations are imported when selected.

* ``dlib_68`` / ``dlib_5`` — dlib's shape predictors (an ensemble of regression
  trees, Kazemi & Sullivan 2014: cascade regression) run in each face box.
* ``mtcnn`` / ``retinaface`` / ``yunet`` — the five points of those detectors,
  run on a crop around each given box (``detector_points``).
* ``dcnn_cascade`` — Sun et al. 2013's three-level CNN cascade for five points, trained
  here with ``harness train-landmarker dcnn_cascade`` (no published weights).

Every built landmarker has ``predict(image, boxes) -> (N, P, 2)`` (see
:class:`harness.types.Landmarker`).  This package imports no framework.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import LandmarkerSpec

from facebench_plugins.detectors import WEIGHTS
from facebench_plugins.landmarkers.options import (
    DcnnCascadeOptions,
    DcnnTrainOptions,  # noqa: F401  (re-exported: the trainer's options)
    DetectorPointsOptions,
    DlibShapeOptions,
)

__all__ = ["DcnnCascadeOptions", "DcnnTrainOptions", "DetectorPointsOptions", "DlibShapeOptions",
           "register_landmarkers"]

_P = "facebench_plugins.landmarkers"
_KAZEMI = ("V. Kazemi, J. Sullivan, 'One Millisecond Face Alignment with an Ensemble of Regression Trees', "
           "CVPR 2014")
_FIVE = ("five", "left eye centre, right eye centre, nose tip, left and right mouth corner (image left/right)")


def _detector_points(name: str, framework: str, paper: str, weights: tuple, license: str) -> LandmarkerSpec:
    return LandmarkerSpec(
        name=name,
        summary=f"The five points of the {name} detector, run on a crop around each given box.",
        factory=f"{_P}.detector_points:build_{name}",
        framework=framework,
        options=DetectorPointsOptions,
        paper=paper,
        license=license,
        weights=weights,
        num_points=5,
        scheme=_FIVE[0],
        meta={"points": _FIVE[1], "detector": name,
              "rule": "detector on the box grown by `margin` per side; the detection overlapping the box most"},
    )


@hookimpl
def register_landmarkers():
    return [
        LandmarkerSpec(
            name="dlib_68",
            summary="dlib's 68-point shape predictor (regression-tree cascade, iBUG 300-W markup).",
            factory=f"{_P}.dlib_shape:build_68",
            framework="dlib",
            options=DlibShapeOptions,
            paper=_KAZEMI,
            license=WEIGHTS["dlib_shape68"].license,
            weights=(WEIGHTS["dlib_shape68"],),
            num_points=68,
            scheme="ibug_68",
            meta={"trained_on": "iBUG 300-W", "boxes": "dlib HOG detector boxes (tighter than the points' box)",
                  "detector": "dlib_hog"},
        ),
        LandmarkerSpec(
            name="dlib_5",
            summary="dlib's 5-point shape predictor: the eye corners and the base of the nose.",
            factory=f"{_P}.dlib_shape:build_5",
            framework="dlib",
            options=DlibShapeOptions,
            paper=_KAZEMI,
            license=WEIGHTS["dlib_shape5"].license,
            weights=(WEIGHTS["dlib_shape5"],),
            num_points=5,
            scheme="dlib_5",
            meta={"points": "image-right eye outer, inner corner; image-left eye outer, inner corner; "
                            "base of the nose (no mouth corners)", "detector": "dlib_hog"},
        ),
        _detector_points("mtcnn", "torch", "K. Zhang et al., 'Joint Face Detection and Alignment Using Multitask "
                         "Cascaded Convolutional Networks', IEEE SPL 2016",
                         (WEIGHTS["mtcnn_pnet"], WEIGHTS["mtcnn_rnet"], WEIGHTS["mtcnn_onet"]), "MIT"),
        _detector_points("retinaface", "torch", "J. Deng et al., 'RetinaFace: Single-shot Multi-level Face "
                         "Localisation in the Wild', CVPR 2020", (WEIGHTS["retinaface_mnet025"],), "MIT"),
        _detector_points("yunet", "opencv", "W. Wu, H. Peng, S. Yu, 'YuNet: A Tiny Millisecond-level Face "
                         "Detector', Machine Intelligence Research 2023", (WEIGHTS["yunet"],), "Apache-2.0"),
        LandmarkerSpec(
            name="dcnn_cascade",
            summary="Sun et al. 2013 five-point CNN cascade (global nets, then patch nets per point); "
                    "trained here with `harness train-landmarker` (no published weights).",
            factory=f"{_P}.dcnn_cascade:build",
            framework="torch",
            options=DcnnCascadeOptions,
            paper="Y. Sun, X. Wang, X. Tang, 'Deep Convolutional Network Cascade for Facial Point Detection', "
                  "CVPR 2013",
            license="Apache-2.0 (the code; a checkpoint follows its training data's terms)",
            num_points=5,
            scheme=_FIVE[0],
            meta={"points": _FIVE[1], "trainer": f"{_P}.dcnn_cascade:train", "train_options": f"{_P}.options:DcnnTrainOptions",
                  "trains_on": "any landmark set with the common five (68 -> 5: eye centres = mean of 36-41 / "
                               "42-47, nose tip 30, mouth corners 48 / 54)",
                  "boxes": "square around the box centre, side = mean of its width and height x (1 + 2 margin), margin 0.2 unless trained otherwise"},
        ),
    ]
