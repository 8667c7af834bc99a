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

from dataclasses import dataclass

from harness.hookspecs import hookimpl
from harness.specs import InpainterSpec, OptionError

__all__ = ["ConvNetOptions", "DeMeshNetOptions", "OpenCVInpaintOptions", "register_inpainters"]

_P = "facebench_plugins.inpainters"
_CODE = "Apache-2.0 (facebench implementation)"


@dataclass(frozen=True)
class OpenCVInpaintOptions:
    """Options of ``telea`` and ``navier_stokes``.

    :param mask: ``estimated`` (blind: the mesh mask is estimated from the
        image) or ``oracle`` (the true mask is given; an upper bound, stated
        as such in the protocol).
    :param radius: ``inpaintRadius`` of ``cv2.inpaint`` in pixels.
    :param dilate: pixels the mask is grown by before inpainting (the lines'
        anti-aliased rims lie outside the thresholded mask).
    :param median: side of the median filter the estimator compares against
        (odd; it must be wider than a mesh line).
    :param k: the estimator's threshold in robust standard deviations
        (1.4826 x MAD) of the deviation from the median-filtered image.
    :param min_deviation: a pixel is never called mesh below this deviation
        (grey levels, summed over RGB).
    """

    mask: str = "estimated"
    radius: float = 3.0
    dilate: int = 0
    median: int = 5
    k: float = 1.5
    min_deviation: float = 10.0

    def __post_init__(self) -> None:
        if self.mask not in ("estimated", "oracle"):
            raise OptionError(f"mask={self.mask!r}: expected 'estimated' or 'oracle'")
        if not self.radius > 0:
            raise OptionError(f"radius={self.radius!r}: expected a positive number of pixels")
        if self.dilate < 0:
            raise OptionError(f"dilate={self.dilate!r}: expected >= 0")
        if self.median < 3 or self.median % 2 == 0:
            raise OptionError(f"median={self.median!r}: expected an odd size >= 3")
        if not self.k > 0:
            raise OptionError(f"k={self.k!r}: expected a positive number")


def _check_net(opts: object, name: str) -> None:
    for key in ("width", "steps", "batch_size"):
        v = getattr(opts, key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise OptionError(f"{name}.{key}={v!r}: expected a positive integer")
    if not opts.lr > 0:  # type: ignore[attr-defined]
        raise OptionError(f"{name}.lr={opts.lr!r}: expected a positive number")  # type: ignore[attr-defined]
    if opts.patch and (opts.patch < 32 or opts.patch % 8):  # type: ignore[attr-defined]
        raise OptionError(f"{name}.patch={opts.patch!r}: expected 0 (whole image) or a multiple of 8, >= 32")  # type: ignore[attr-defined]
    if opts.device not in ("auto", "cpu", "cuda"):  # type: ignore[attr-defined]
        raise OptionError(f"{name}.device={opts.device!r}: expected auto, cpu or cuda")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ConvNetOptions:
    """Options of ``multitask_convnet``.

    :param width: channels of the first stage (doubled at each of 3 downsamplings); a checkpoint
        given with ``weights`` sets it.
    :param steps: training steps of ``fit`` (``--max-steps`` of the run wins).
    :param batch_size: training batch.
    :param lr: Adam learning rate (cosine-decayed to 5 %).
    :param patch: training crop side (multiple of 8); 0 trains on whole images.
    :param mask_weight: weight of the mask BCE against the restoration L1.
    :param weights: a checkpoint written by ``save`` to load (a run with
        ``--train`` fine-tunes it).  For evaluation several may be given,
        separated by commas (e.g. the two cross-fitted checkpoints of a
        10-fold run): each evaluated fold is restored by the first one whose
        recorded training identities are disjoint from the fold's.
    :param device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    """

    width: int = 16
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    patch: int = 96
    mask_weight: float = 0.5
    weights: str = ""
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_net(self, "multitask_convnet")
        if self.mask_weight < 0:
            raise OptionError(f"multitask_convnet.mask_weight={self.mask_weight!r}: expected >= 0")


@dataclass(frozen=True)
class DeMeshNetOptions:
    """Options of ``demeshnet``.

    :param identity_weight: weight of the identity loss ``1 - cos(f(restored),
        f(clean))`` with ``f`` the frozen identity network; 0 trains with the
        pixel losses only.
    :param identity: the frozen identity-feature network: ``mobilefacenet_casia``
        (MobileFaceNet with the real CASIA-WebFace checkpoint, 112x96) or ``none``.
    :param mesh_weight: extra weight of the L1 on the pixels under the mesh.
    Other options as ``multitask_convnet``.
    """

    width: int = 16
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    patch: int = 0
    identity_weight: float = 0.1
    identity: str = "mobilefacenet_casia"
    mesh_weight: float = 2.0
    weights: str = ""
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_net(self, "demeshnet")
        if self.identity not in ("mobilefacenet_casia", "none"):
            raise OptionError(f"demeshnet.identity={self.identity!r}: expected 'mobilefacenet_casia' or 'none'")
        if self.identity_weight < 0 or self.mesh_weight < 0:
            raise OptionError("demeshnet.identity_weight and mesh_weight must be >= 0")


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
