"""Built-in backbones: specs only; implementations are imported when selected.

One module per backbone family, named by each spec's factory string:

============================  ===========================================
``resnet_sphere``             resnet20, resnet36 (SphereFace / OpenSphere sfnet)
``inception_resnet_v1``       inception_resnet_v1 (FaceNet)
``lresnet``                   lresnet50, lresnet100 (ArcFace IR-50 / IR-100)
``mobilefacenet``             mobilefacenet (+ CASIA-WebFace checkpoint)
============================  ===========================================

``meta["params"]`` and ``meta["macs"]`` are the network's size at the spec's
default input size, as counted by ``facebench_plugins.backbones._profile``
(conv + FC multiply-accumulates of one image); the tests recount them.
``meta["min_input_size"]`` is the smallest side the network accepts.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import BackboneSpec

from facebench_plugins.backbones.options import (
    MOBILEFACENET_CASIA,
    MOBILEFACENET_CASIA_INPUT,
    InceptionResNetV1Options,
    LResNetOptions,
    MobileFaceNetOptions,
    SphereResNetOptions,
)

__all__ = ["register_backbones", "specs"]

_MODULE = "facebench_plugins.backbones"
_CODE_LICENSE = "Apache-2.0 (facebench implementation; no pretrained weights)"

_SPHEREFACE = (
    "Liu et al., SphereFace: Deep Hypersphere Embedding for Face Recognition, CVPR 2017"
)
_ARCFACE = (
    "Deng et al., ArcFace: Additive Angular Margin Loss for Deep Face Recognition, CVPR 2019"
)
_FACENET = (
    "Schroff et al., FaceNet: A Unified Embedding for Face Recognition and Clustering, CVPR 2015; "
    "Szegedy et al., Inception-v4, Inception-ResNet and the Impact of Residual Connections, AAAI 2017"
)
_MOBILEFACENET = (
    "Chen et al., MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on "
    "Mobile Devices, CCBR 2018"
)

def _sphere_resnet(depth: int, units: tuple[int, ...], params: int, macs: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"resnet{depth}",
        summary=f"SphereFace {depth}-layer residual net (OpenSphere sfnet{depth}), PReLU, no BN, FC to 512-d.",
        factory=f"{_MODULE}.resnet_sphere:build_resnet{depth}",
        framework="torch",
        options=SphereResNetOptions,
        paper=_SPHEREFACE,
        license=_CODE_LICENSE,
        input_size=(112, 112),
        embedding_size=512,
        alignment="arcface_112",
        meta={
            "params": params,
            "macs": macs,
            "stage_units": units,
            "min_input_size": SphereResNetOptions.MIN_SIZE,
        },
    )


def _lresnet(depth: int, units: tuple[int, ...], params: int, macs: int,
             published: tuple[int, int]) -> BackboneSpec:
    return BackboneSpec(
        name=f"lresnet{depth}",
        summary=f"ArcFace LResNet{depth}E-IR (IR-{depth}): IR units, BN-Dropout-FC-BN head, 512-d.",
        factory=f"{_MODULE}.lresnet:build_lresnet{depth}",
        framework="torch",
        options=LResNetOptions,
        paper=_ARCFACE,
        license=_CODE_LICENSE,
        input_size=(112, 112),
        embedding_size=512,
        alignment="arcface_112",
        meta={
            "params": params,
            "macs": macs,
            "published_params": published[0],
            "published_macs": published[1],
            "stage_units": units,
            "min_input_size": LResNetOptions.MIN_SIZE,
        },
    )


def _inception_resnet_v1() -> BackboneSpec:
    return BackboneSpec(
        name="inception_resnet_v1",
        summary="FaceNet's Inception-ResNet-v1 (davidsandberg/facenet layout), 160x160, 512-d.",
        factory=f"{_MODULE}.inception_resnet_v1:build_inception_resnet_v1",
        framework="torch",
        options=InceptionResNetV1Options,
        paper=_FACENET,
        license=_CODE_LICENSE,
        input_size=(160, 160),
        embedding_size=512,
        alignment="arcface_112",
        meta={
            "params": 23_482_624,
            "macs": 1_417_662_304,
            "min_input_size": InceptionResNetV1Options.MIN_SIZE,
        },
    )


def _mobilefacenet() -> BackboneSpec:
    return BackboneSpec(
        name="mobilefacenet",
        summary=(
            "MobileFaceNet, 1.0 M params, 128-d; -o mobilefacenet.weights=casia loads the "
            "CASIA-WebFace checkpoint (112x96, flip-concat features)."
        ),
        factory=f"{_MODULE}.mobilefacenet:build_mobilefacenet",
        framework="torch",
        options=MobileFaceNetOptions,
        paper=_MOBILEFACENET,
        license=_CODE_LICENSE,
        weights=(MOBILEFACENET_CASIA,),
        input_size=(112, 112),
        embedding_size=128,
        alignment="arcface_112",
        meta={
            "params": 1_003_136,
            "macs": 220_965_376,
            "published_params": 990_000,
            "published_macs": 221_000_000,
            "min_input_size": MobileFaceNetOptions.MIN_SIZE,
            "flip_concat": False,
            # what changes with -o mobilefacenet.weights=<key>
            "variants": {
                "casia": {
                    "input_size": MOBILEFACENET_CASIA_INPUT,
                    "embedding_size": 128,
                    "mean": (127.5, 127.5, 127.5),
                    "std": (128.0, 128.0, 128.0),
                    "channel_order": "RGB",
                    "alignment": "sphereface_112x96",
                    "flip_concat": True,
                    "params": 999_552,
                    "macs": 189_408_256,
                    "trained_on": "CASIA-WebFace",
                    "weights": "068.ckpt",
                    "license": "no licence stated: tests only",
                }
            },
        },
    )


def specs() -> list[BackboneSpec]:
    """The built-in backbone specs (no torch import)."""
    return [
        _sphere_resnet(20, (1, 2, 4, 1), 24_505_664, 2_041_360_384),
        _sphere_resnet(36, (2, 4, 8, 2), 34_613_824, 3_891_048_448),
        _inception_resnet_v1(),
        _lresnet(50, (3, 4, 14, 3), 43_590_848, 6_309_330_944, (43_590_000, 6_309_000_000)),
        _lresnet(100, (3, 13, 30, 3), 65_156_160, 12_089_606_144, (65_160_000, 12_090_000_000)),
        _mobilefacenet(),
    ]


@hookimpl
def register_backbones():
    return specs()
