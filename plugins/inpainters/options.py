"""Options of the built-in inpainters (``-o <inpainter>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import OptionError, check_range

__all__ = ["ConvNetOptions", "DeMeshNetOptions", "OpenCVInpaintOptions"]


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
    for key, high in (("width", 1024), ("steps", 10**7), ("batch_size", 65_536), ("patch", 4096)):
        check_range(f"{name}.{key}", getattr(opts, key), 0 if key == "patch" else 1, high, integer=True)
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
