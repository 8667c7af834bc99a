"""Built-in datasets: specs only; implementations are imported when selected.

One module per on-disk layout, named by each spec's factory string.  This
package imports no framework (OpenCV, scipy, torch), so ``harness list``
stays light.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import DatasetSpec

from facebench_plugins.datasets._options import (
    AttOptions,
    BinOptions,
    FddbOptions,
    ImageFolderOptions,
    LfwOptions,
    RecOptions,
    SyntheticOptions,
    TfrecordOptions,
    VideoOptions,
    WiderOptions,
    SpoofOptions,
)

from facebench_plugins.datasets._ijb_options import IjbOptions
from facebench_plugins.datasets._landmark_options import (
    CocoLandmarksOptions,
    CofwOptions,
    LandmarkFolderOptions,
    WflwOptions,
)

__all__ = ["register_datasets"]

_P = "facebench_plugins.datasets"


@hookimpl
def register_datasets():
    return [
        DatasetSpec(
            name="synthetic",
            summary="Procedurally rendered face identities (synthetic, not real faces); deterministic from a seed.",
            factory=f"{_P}.synthetic:build",
            framework="opencv",
            options=SyntheticOptions,
            tasks=("train", "verification"),
            synthetic=True,
        ),
        DatasetSpec(
            name="imagefolder",
            summary="One folder of images per identity (root/<identity>/<image>); labels by sorted name.",
            factory=f"{_P}.imagefolder:build",
            framework="opencv",
            options=ImageFolderOptions,
            tasks=("train",),
        ),
        DatasetSpec(
            name="mesh",
            summary="Clean faces (identity folders or an LFW home) for mesh-removal training; meshed on the fly.",
            factory=f"{_P}.mesh:build",
            framework="opencv",
            options=ImageFolderOptions,
            tasks=("train",),
        ),
        DatasetSpec(
            name="lfw",
            summary="LFW identity folders + pairs.txt (View 2: 6,000 pairs, 10 folds); also scikit-learn's lfw_home.",
            factory=f"{_P}.lfw:build",
            framework="opencv",
            options=LfwOptions,
            tasks=("verification",),
            paper="Huang et al., Labeled Faces in the Wild, UMass TR 07-49, 2007",
            license="LFW: research use",
        ),
        DatasetSpec(
            name="bin",
            summary="insightface verification .bin (restricted unpickler), or a folder of them evaluated as a suite.",
            factory=f"{_P}.bin:build",
            framework="opencv",
            options=BinOptions,
            tasks=("verification",),
        ),
        DatasetSpec(
            name="ijb",
            summary="IJB-B/IJB-C in insightface's layout (meta/ + loose_crop/): 1:1 and 1:N template protocols.",
            factory=f"{_P}.ijb:build",
            framework="opencv",
            options=IjbOptions,
            tasks=(),
            paper="Maze et al., IARPA Janus Benchmark-C: Face Dataset and Protocol, ICB 2018",
            license="IJB-B/C: by application to NIST; not distributed with facebench",
        ),
        DatasetSpec(
            name="rec",
            summary="MXNet RecordIO train.rec/.idx as insightface writes it (read without mxnet).",
            factory=f"{_P}.rec:build",
            framework="opencv",
            options=RecOptions,
            tasks=("train",),
        ),
        DatasetSpec(
            name="tfrecord",
            summary="TFRecord of tf.train.Example (image/encoded, image/class/label), read without TensorFlow.",
            factory=f"{_P}.tfrecord:build",
            framework="opencv",
            options=TfrecordOptions,
            tasks=("train",),
        ),
        DatasetSpec(
            name="att",
            summary="AT&T / ORL faces (s1..s40, 10 grayscale 92x112 images each); subject ranges, generated pairs.",
            factory=f"{_P}.att:build",
            framework="opencv",
            options=AttOptions,
            tasks=("train", "verification"),
            paper="Samaria & Harter, Parameterisation of a stochastic model for human face identification, 1994",
            license="AT&T Laboratories Cambridge: acknowledgement requested",
        ),
        DatasetSpec(
            name="wider",
            summary="WIDER FACE val ground truth (.mat, labelv2) with easy/medium/hard keep-lists as ignore flags.",
            factory=f"{_P}.wider:build",
            framework="opencv",
            options=WiderOptions,
            tasks=("detection",),
            paper="Yang et al., WIDER FACE: A Face Detection Benchmark, CVPR 2016",
            license="WIDER FACE research terms",
        ),
        DatasetSpec(
            name="fddb",
            summary="FDDB ellipse folds converted to boxes (images supplied separately).",
            factory=f"{_P}.fddb:build",
            framework="opencv",
            options=FddbOptions,
            tasks=("detection",),
            paper="Jain & Learned-Miller, FDDB, UMass TR UM-CS-2010-009",
            license="FDDB research terms",
        ),
        DatasetSpec(
            name="video",
            summary="Frames of a video file (cv2.VideoCapture) as one identity's images.",
            factory=f"{_P}.video:build",
            framework="opencv",
            options=VideoOptions,
            tasks=("train",),
        ),
        DatasetSpec(
            name="spoof",
            summary="Presentation-attack folder: live/, attack/<species>/, optional train/ dev/ test/ splits (images or videos).",
            factory=f"{_P}.spoof:build",
            framework="opencv",
            options=SpoofOptions,
            tasks=("liveness",),
        ),
        ] + _landmark_datasets()


def _landmark_datasets() -> list:
    """Faces with ground-truth landmarks (the ``landmarks`` task); numbers on the few samples in
    ../shared/data/landmarks are a smoke test, not the benchmark."""
    def spec(name: str, summary: str, options: type, **kw) -> DatasetSpec:
        return DatasetSpec(name=name, summary=summary, factory=f"{_P}.{name}:build", framework="opencv",
                           options=options, tasks=("landmarks",), **kw)

    return [
        spec("aflw2000", "AFLW2000-3D: imageNNNNN.jpg + .mat (pt3d_68, 68 points); box = the points' tight box.",
             LandmarkFolderOptions,
             paper="X. Zhu, Z. Lei, X. Liu, H. Shi, S. Z. Li, 'Face Alignment Across Large Poses: A 3D Solution', "
                   "CVPR 2016", license="AFLW2000-3D research terms"),
        spec("pts", "iBUG .pts folders (300-W, 300-VW annot/ + imgs/, LFPW, HELEN, AFW); box = the points' box.",
             LandmarkFolderOptions,
             paper="C. Sagonas et al., '300 Faces In-the-Wild Challenge', IMAVIS 2016",
             license="300-W / 300-VW: research use only"),
        spec("wflw", "WFLW 98-point annotation text (list_98pt_rect_attr_*.txt + WFLW_images/); the line's box.",
             WflwOptions, paper="W. Wu et al., 'Look at Boundary: A Boundary-Aware Face Alignment Algorithm', "
                                "CVPR 2018", license="WFLW research terms"),
        spec("cofw", "COFW .mat (IsT / phisT / bboxesT, 29 points with occlusion flags, MATLAB v5).",
             CofwOptions, paper="X. P. Burgos-Artizzu, P. Perona, P. Dollar, 'Robust face landmark estimation "
                                "under occlusion', ICCV 2013", license="COFW research terms"),
        spec("coco_landmarks", "COCO-style keypoint JSON (mmpose's face sets: 68 / 98 / 29 / 19 / 106 points).",
             CocoLandmarksOptions, license="as the images' datasets"),
    ]
