"""``demeshnet``: after Zhang et al., "DeMeshNet: Blind Face Inpainting for
Deep MeshFace Verification" (IEEE TIFS 2018).

A U-Net encoder-decoder (skip connections, residual output) trained with a
pixel loss — L1 over the image plus ``mesh_weight`` x L1 under the mesh —
and a feature (identity) loss ``identity_weight * (1 - cos(f(restored),
f(clean)))`` where ``f`` is a frozen face-recognition network the loss is
differentiated through: MobileFaceNet with the real CASIA-WebFace
checkpoint (``identity=mobilefacenet_casia``, 112x96 input; the task builds
it through the registry as ``mobilefacenet`` with ``weights=casia`` and
passes it to :meth:`fit`).  The 150x150 dlib chip's central 120x100 region
is resized to 112x96 for it.  Blind: no mask is given at test time.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from facebench_plugins.inpainters import IDENTITY_BACKBONE, DeMeshNetOptions
from facebench_plugins.inpainters._torch import TorchInpainter, UNet

__all__ = ["DeMeshNet", "build", "identity_input"]


def identity_input(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (N, 3, H, W) -> the identity network's normalised 112x96 input."""
    h, w = x.shape[-2:]
    y0, y1, x0, x1 = IDENTITY_BACKBONE["crop_of_dlib_chip"]
    crop = x[..., round(y0 * h / 150):round(y1 * h / 150), round(x0 * w / 150):round(x1 * w / 150)]
    crop = F.interpolate(crop, size=IDENTITY_BACKBONE["input_size"], mode="bilinear", align_corners=False)
    return (crop * 255.0 - IDENTITY_BACKBONE["mean"]) / IDENTITY_BACKBONE["std"]


class DeMeshNet(TorchInpainter):
    arch = "demeshnet"

    def __init__(self, options: DeMeshNetOptions | None = None) -> None:
        options = options or DeMeshNetOptions()
        super().__init__(options, lambda width: UNet(width, skips=True, mask_head=False))

    @property
    def uses_identity(self) -> bool:
        return self.options.identity != "none" and self.options.identity_weight > 0

    def _identity_fn(self, identity_embedder: Any) -> Callable | None:
        if not self.uses_identity:
            return None
        if identity_embedder is None:
            raise ValueError(
                "demeshnet's identity loss needs the frozen identity network: pass identity_embedder="
                "(e.g. registry.build('backbone', 'mobilefacenet', {'weights': 'casia'})), "
                "or set -o demeshnet.identity=none"
            )
        net = identity_embedder.to(self.device).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return lambda x: net(identity_input(x))

    def _loss(self, meshed, clean, mask, identity):
        pred, _ = self.net(meshed)
        l1 = F.l1_loss(pred, clean)
        under = (torch.abs(pred - clean) * mask).sum() / (mask.sum() * 3 + 1.0)
        loss = l1 + self.options.mesh_weight * under
        terms = {"l1": l1.item(), "l1_mesh": under.item()}
        if identity is not None:
            with torch.no_grad():
                target = identity(clean)
            cos = F.cosine_similarity(identity(pred), target, dim=1).mean()
            loss = loss + self.options.identity_weight * (1 - cos)
            terms["identity_cos"] = cos.item()
        return loss, terms


def build(options: DeMeshNetOptions | None = None) -> DeMeshNet:
    """Factory named by the ``demeshnet`` spec."""
    return DeMeshNet(options)
