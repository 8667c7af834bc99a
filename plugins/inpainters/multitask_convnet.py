"""``multitask_convnet``: after Zhang et al., "Multi-task ConvNet for Blind
Face Inpainting with Application to Face Verification" (ICB 2016).

One network, two heads on a shared encoder-decoder trunk: a mesh-mask head
(logits) and a restoration head.  The restored face is composited with the
predicted mask, ``m * predicted + (1 - m) * meshed``, so the net repaints
only where it believes the mesh is; the loss is ``L1(restored, clean) +
mask_weight * BCE(mask logits, true mask)``.  Blind: no mask is given at
test time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch.nn.functional as F

from facebench_plugins.inpainters import ConvNetOptions
from facebench_plugins.inpainters._torch import TorchInpainter, UNet

__all__ = ["MultiTaskConvNet", "build"]


class MultiTaskConvNet(TorchInpainter):
    arch = "multitask_convnet"

    def __init__(self, options: ConvNetOptions | None = None) -> None:
        options = options or ConvNetOptions()
        super().__init__(options, lambda width: UNet(width, skips=True, mask_head=True, mask_guided=True))

    def _loss(self, meshed, clean, mask, identity):
        pred, logits = self.net(meshed)
        l1 = F.l1_loss(pred, clean)
        bce = F.binary_cross_entropy_with_logits(logits, mask)
        return l1 + self.options.mask_weight * bce, {"l1": l1.item(), "bce": bce.item()}

    def estimate_masks(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The mask head's prediction (probability > 0.5) for each image."""
        return self._forward(list(images))[1]  # type: ignore[return-value]


def build(options: ConvNetOptions | None = None) -> MultiTaskConvNet:
    """Factory named by the ``multitask_convnet`` spec."""
    return MultiTaskConvNet(options)
