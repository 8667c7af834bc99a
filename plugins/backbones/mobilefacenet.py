"""MobileFaceNet (Chen et al., "MobileFaceNets: Efficient CNNs for Accurate
Real-Time Face Verification on Mobile Devices", CCBR 2018, Table 1).

3x3 stride-2 conv (64) - 3x3 depthwise conv (64) - inverted-residual
bottlenecks (expansion t, channels c, repeats n, first stride s):
(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1) -
1x1 conv (512) - global depthwise conv ("GDConv", kernel = the last map, 7x7
at 112x112) - linear 1x1 conv to the embedding, BatchNorm.  PReLU
everywhere except after the projections.  0.99 M parameters and 221 M
multiply-accumulates at 112x112 in the paper.

Module names follow Xiaoccer/MobileFaceNet_Pytorch so that its
CASIA-WebFace checkpoint (``-o mobilefacenet.weights=casia``: 112x96 input,
128-d, RGB (x - 127.5) / 128) loads with every key matched.

Evaluation convention of that checkpoint: the face feature is
``concat(f(x), f(flip(x)))`` — see :func:`flip_concat_embed`.  A model built
with ``weights=casia`` has ``flip_concat = True``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from facebench_plugins.backbones.options import MOBILEFACENET_CASIA as CASIA_WEIGHTS
from facebench_plugins.backbones.options import MobileFaceNetOptions
from harness.errors import DataError
from harness.weights import locate_weights

__all__ = [
    "BOTTLENECKS",
    "CASIA_WEIGHTS",
    "MobileFaceNet",
    "build_mobilefacenet",
    "flip_concat_embed",
    "load_casia_state_dict",
]

#: (expansion t, output channels c, repeats n, first stride s) — the paper's Table 1
BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))

class ConvBlock(nn.Module):
    """conv - BN (- PReLU unless linear)."""

    def __init__(self, cin: int, cout: int, kernel, stride: int, padding, *, depthwise: bool = False,
                 linear: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=cin if depthwise else 1,
                              bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = None if linear else nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.prelu is None else self.prelu(x)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand - 3x3 depthwise (stride) - 1x1 linear project."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


def _out_size(size: int) -> int:
    for _ in range(4):  # conv1 and three stride-2 bottlenecks: ceil(n / 2) each
        size = (size + 1) // 2
    return size


class MobileFaceNet(nn.Module):
    """(N, 3, H, W) -> (N, embedding_size)."""

    def __init__(self, opts: MobileFaceNetOptions):
        super().__init__()
        assert opts.input_size is not None  # the options resolve the default
        self.input_size = tuple(opts.input_size)
        self.embedding_size = opts.embedding_size
        self.flip_concat = opts.weights == "casia"
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, depthwise=True)
        blocks = []
        cin = 64
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                blocks.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBlock(cin, 512, 1, 1, 0)
        kernel = tuple(_out_size(s) for s in self.input_size)
        self.linear7 = ConvBlock(512, 512, kernel, 1, 0, depthwise=True, linear=True)  # GDConv
        self.linear1 = ConvBlock(512, opts.embedding_size, 1, 1, 0, linear=True)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw_conv1(self.conv1(x))
        x = self.blocks(x)
        x = self.linear7(self.conv2(x))
        x = self.linear1(x)
        return torch.flatten(x, 1)


def flip_concat_embed(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The checkpoint's evaluation feature: ``concat(f(x), f(x flipped left-right))``.

    :param images: normalised batch (N, 3, H, W).
    :returns: (N, 2 * D).
    """
    return torch.cat([model(images), model(torch.flip(images, dims=[3]))], dim=1)


def load_casia_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``net_state_dict`` of Xiaoccer's checkpoint, loaded with ``weights_only=True``.

    :raises DataError: the file is not a loadable checkpoint of that layout.
    """
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise DataError(
            f"cannot load {path} with torch.load(weights_only=True): {exc}. facebench does not "
            "unpickle arbitrary objects; re-save the checkpoint as a plain dict of tensors "
            "({'net_state_dict': state_dict}) from a trusted environment."
        ) from exc
    if not isinstance(ckpt, dict) or "net_state_dict" not in ckpt:
        keys = sorted(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise DataError(
            f"{path} is not a MobileFaceNet_Pytorch checkpoint: expected a dict with "
            f"'net_state_dict', found {keys}"
        )
    return ckpt["net_state_dict"]


def build_mobilefacenet(opts: MobileFaceNetOptions | None = None) -> MobileFaceNet:
    """MobileFaceNet; with ``weights=casia`` the CASIA-WebFace checkpoint is loaded (strict)."""
    opts = opts or MobileFaceNetOptions()
    model = MobileFaceNet(opts)
    if opts.weights == "casia":
        path = locate_weights(CASIA_WEIGHTS, opts.weights_path or None)
        state = load_casia_state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DataError(f"{path} does not fit MobileFaceNet (112x96, 128-d): {exc}") from exc
        model.eval()
    return model
