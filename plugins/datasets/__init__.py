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
            summary="insightface verification .bin (aligned crops + issame), read with a restricted unpickler.",
            factory=f"{_P}.bin:build",
            framework="opencv",
            options=BinOptions,
            tasks=("verification",),
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
    ]
