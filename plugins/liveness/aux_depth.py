"""``aux_depth``: auxiliary depth supervision (Liu, Jourabloo & Liu, CVPR 2018).

The idea kept from the paper: a fully convolutional network regresses a
face depth map; a live face is supervised with a face-shaped depth, an
attack (a flat print or screen) with an all-zero map, and the score is the
mean of the predicted map.  Optionally a binary head on the deepest features
is trained alongside and fused into the score.

How the depth labels are made here (the paper rendered each live face's
depth with a 3D face alignment model, which facebench does not ship): the
crops the liveness task feeds are five-point aligned to the ``arcface_112``
template, so every face's eyes, nose and mouth sit at the template's points.
One fixed template depth map is therefore defined in that frame — a
half-ellipsoid over the face oval (centre (56, 60), semi-axes 44 x 56 px)
plus a Gaussian ridge at the template nose (56.0, 71.7), scaled to [0, 1] —
and resized to the output map (size / 4 on a side).  This is the same as
warping the prior to each face by its 5 landmarks.  The rPPG branch of the
paper (which needs video) is not reproduced.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from facebench_plugins.liveness import AuxDepthOptions
from facebench_plugins.liveness._torch_common import TorchLiveness, conv_bn_relu

__all__ = ["AuxDepth", "AuxDepthNet", "build", "template_depth"]

#: the prior's geometry in the 112 x 112 arcface frame
_CENTRE = (56.0, 60.0)
_AXES = (44.0, 56.0)
_NOSE = (56.0252, 71.7366)


@lru_cache(maxsize=8)
def template_depth(size: int) -> np.ndarray:
    """The live-face depth prior at ``size`` x ``size`` (float32 in [0, 1])."""
    import cv2

    yy, xx = np.mgrid[0:112, 0:112].astype(np.float64) + 0.5
    r2 = ((xx - _CENTRE[0]) / _AXES[0]) ** 2 + ((yy - _CENTRE[1]) / _AXES[1]) ** 2
    d = np.sqrt(np.clip(1.0 - r2, 0.0, None))
    nose = 0.35 * np.exp(-0.5 * (((xx - _NOSE[0]) / 7.0) ** 2 + ((yy - _NOSE[1]) / 12.0) ** 2))
    d = np.where(r2 < 1.0, d + nose, 0.0)
    d = d / d.max()
    out = cv2.resize(d.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    out.setflags(write=False)
    return out


class AuxDepthNet(nn.Module):
    """Input (N, 3, S, S) -> depth map (N, S/4, S/4) and a binary logit (N,)."""

    def __init__(self, width: int = 16, binary_head: bool = True) -> None:
        super().__init__()
        w = width
        self.block1 = nn.Sequential(conv_bn_relu(3, w), conv_bn_relu(w, 2 * w), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(conv_bn_relu(2 * w, 2 * w), conv_bn_relu(2 * w, 3 * w), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(conv_bn_relu(3 * w, 3 * w), conv_bn_relu(3 * w, 4 * w), nn.MaxPool2d(2))
        self.depth = nn.Sequential(conv_bn_relu(7 * w, 2 * w), conv_bn_relu(2 * w, w), nn.Conv2d(w, 1, 3, padding=1))
        self.binary = (nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, 1))
                       if binary_head else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        f2 = self.block2(self.block1(x))  # S/4
        f3 = self.block3(f2)  # S/8
        up = nn.functional.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        depth = self.depth(torch.cat([f2, up], 1)).squeeze(1)
        logit = self.binary(f3).squeeze(1) if self.binary is not None else None
        return depth, logit


class AuxDepth(TorchLiveness):
    kind = "aux_depth"

    def make_net(self) -> nn.Module:
        o = self.options
        prior = torch.from_numpy(np.array(template_depth(o.size // 4)))
        self.prior = prior
        self.prior_mean = float(prior.mean())
        return AuxDepthNet(o.width, o.binary_head)

    def batch_loss(self, out: Any, y: torch.Tensor) -> torch.Tensor:
        depth, logit = out
        target = y[:, None, None] * self.prior.to(depth.device)[None]
        loss = nn.functional.mse_loss(depth, target)
        if logit is not None and self.options.binary_weight > 0:
            bce = nn.functional.binary_cross_entropy_with_logits(logit, y, pos_weight=self.pos_weight.to(y.device))
            loss = loss + self.options.binary_weight * bce
        return loss

    def batch_score(self, out: Any) -> torch.Tensor:
        depth, logit = out
        s = depth.clamp(0.0, 1.0).mean(dim=(1, 2)) / self.prior_mean
        f = self.options.fusion
        if logit is not None and f < 1.0:
            s = f * s + (1.0 - f) * torch.sigmoid(logit)
        return s

    @torch.inference_mode()
    def depth_maps(self, images: list) -> np.ndarray:
        """The predicted depth maps (N, S/4, S/4) of RGB face crops."""
        from facebench_plugins.liveness._torch_common import crops_to_tensor

        self.net.eval()
        depth, _ = self.net(crops_to_tensor(images, self.options.size).to(self.device))
        return depth.cpu().numpy()


def build(options: AuxDepthOptions | None = None, **_: Any) -> AuxDepth:
    return AuxDepth(options or AuxDepthOptions())
