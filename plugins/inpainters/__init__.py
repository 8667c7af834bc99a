"""Built-in inpainters: specs only; implementations are imported when selected.

No framework is imported here (no OpenCV, no torch): ``harness list`` reads
these specs without either.

Every built object offers ``restore(images, masks=None) -> list`` (RGB uint8,
same sizes), ``needs_mask`` (True when it must be given the true mesh mask:
the oracle mode) and ``estimate_masks(images)`` where it predicts the mask
itself.  The trainable ones add ``fit(clean_images, rng_seed, steps,
progress=True, identity_embedder=None)``, ``save(path)`` and ``load(path)``.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl
from harness.specs import InpainterSpec

from facebench_plugins.inpainters.options import (
    ConvNetOptions,
    DeMeshNetOptions,
    OpenCVInpaintOptions,
)

__all__ = ["ConvNetOptions", "DeMeshNetOptions", "OpenCVInpaintOptions", "register_inpainters"]

_P = "facebench_plugins.inpainters"
_CODE = "Apache-2.0 (facebench implementation)"


#: the identity network DeMeshNet differentiates through (built by the task).
IDENTITY_BACKBONE = {
    "name": "mobilefacenet",
    "options": {"weights": "casia"},
    "input_size": (112, 96),
    "mean": 127.5,
    "std": 128.0,
    "crop_of_dlib_chip": (15, 135, 25, 125),
    "note": "frozen MobileFaceNet, CASIA-WebFace checkpoint; the 150x150 chip's central "
            "120x100 region resized to 112x96",
}


@hookimpl
def register_inpainters():
    return [
        InpainterSpec(
            name="telea",
            summary="OpenCV Telea fast-marching inpainting with an estimated (or oracle) mesh mask.",
            factory=f"{_P}.telea:build",
            framework="opencv",
            options=OpenCVInpaintOptions,
            paper="A. Telea, An Image Inpainting Technique Based on the Fast Marching Method, "
                  "J. Graphics Tools 9(1), 2004",
            license="Apache-2.0 (OpenCV)",
            trainable=False,
            meta={"mask_estimator": "per-pixel RGB deviation from a median-filtered image, "
                                    "thresholded at k robust standard deviations"},
        ),
        InpainterSpec(
            name="navier_stokes",
            summary="OpenCV Navier-Stokes inpainting with an estimated (or oracle) mesh mask.",
            factory=f"{_P}.navier_stokes:build",
            framework="opencv",
            options=OpenCVInpaintOptions,
            paper="Bertalmio, Bertozzi & Sapiro, Navier-Stokes, Fluid Dynamics, and Image and "
                  "Video Inpainting, CVPR 2001",
            license="Apache-2.0 (OpenCV)",
            trainable=False,
            meta={"mask_estimator": "per-pixel RGB deviation from a median-filtered image, "
                                    "thresholded at k robust standard deviations"},
        ),
        InpainterSpec(
            name="multitask_convnet",
            summary="Blind multi-task ConvNet: shared encoder, a mesh-mask head and a restoration head.",
            factory=f"{_P}.multitask_convnet:build",
            framework="torch",
            options=ConvNetOptions,
            paper="Zhang, He, Ran & Song, Multi-task ConvNet for Blind Face Inpainting with "
                  "Application to Face Verification, ICB 2016",
            license=_CODE,
            trainable=True,
            meta={"loss": "L1(restored, clean) + mask_weight * BCE(mask logits, true mask)",
                  "blind": True},
        ),
        InpainterSpec(
            name="demeshnet",
            summary="DeMeshNet: U-Net encoder-decoder, pixel loss + identity loss through a frozen "
                    "MobileFaceNet (CASIA).",
            factory=f"{_P}.demeshnet:build",
            framework="torch",
            options=DeMeshNetOptions,
            paper="Zhang, He, Ran & Song, DeMeshNet: Blind Face Inpainting for Deep MeshFace "
                  "Verification, IEEE TIFS 13(3), 2018",
            license=_CODE,
            trainable=True,
            meta={"loss": "L1 + mesh_weight * L1 under the mesh + identity_weight * (1 - cos) of "
                          "frozen identity features",
                  "identity_backbone": IDENTITY_BACKBONE, "blind": True},
        ),
    ]
