"""FaceNet's Inception-ResNet-v1.

Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", AAAI 2017 (figure 14: the v1 stem, 5 x Inception-
ResNet-A, Reduction-A, 10 x Inception-ResNet-B, Reduction-B, 5 x
Inception-ResNet-C), used as the embedding network of FaceNet (Schroff et
al., CVPR 2015) by davidsandberg/facenet: average pooling, dropout, a
bias-free bottleneck FC to the embedding and BatchNorm.  Residual branches
are scaled by 0.17 / 0.10 / 0.20 as in that implementation; the last C block
has no ReLU.  BatchNorm eps is 1e-3 (TensorFlow's).

FaceNet feeds 160x160 faces; any size from 75x75 works (global pooling).
The embedding is not L2-normalised here: losses and evaluation do that.
"""

from __future__ import annotations

import torch
from torch import nn

from facebench_plugins.backbones.options import InceptionResNetV1Options

__all__ = ["InceptionResNetV1", "build_inception_resnet_v1"]


class BasicConv2d(nn.Sequential):
    """conv (no bias) - BN(eps 1e-3) - ReLU."""

    def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3),
            nn.ReLU(inplace=True),
        )


class _Residual(nn.Module):
    """Concatenate branches, 1x1 conv back to the input width, scale, add, ReLU."""

    def __init__(self, branches: list[nn.Module], concat: int, channels: int, scale: float,
                 relu: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.project = nn.Conv2d(concat, channels, 1, 1, bias=True)
        self.scale = scale
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([b(x) for b in self.branches], dim=1)
        return self.relu(x + self.scale * self.project(out))


def block35(scale: float = 0.17) -> _Residual:
    """Inception-ResNet-A on the 35x35 grid (256 channels)."""
    return _Residual(
        [
            BasicConv2d(256, 32, 1),
            nn.Sequential(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1)),
            nn.Sequential(
                BasicConv2d(256, 32, 1),
                BasicConv2d(32, 32, 3, padding=1),
                BasicConv2d(32, 32, 3, padding=1),
            ),
        ],
        96, 256, scale,
    )


def block17(scale: float = 0.10) -> _Residual:
    """Inception-ResNet-B on the 17x17 grid (896 channels)."""
    return _Residual(
        [
            BasicConv2d(896, 128, 1),
            nn.Sequential(
                BasicConv2d(896, 128, 1),
                BasicConv2d(128, 128, (1, 7), padding=(0, 3)),
                BasicConv2d(128, 128, (7, 1), padding=(3, 0)),
            ),
        ],
        256, 896, scale,
    )


def block8(scale: float = 0.20, relu: bool = True) -> _Residual:
    """Inception-ResNet-C on the 8x8 grid (1792 channels)."""
    return _Residual(
        [
            BasicConv2d(1792, 192, 1),
            nn.Sequential(
                BasicConv2d(1792, 192, 1),
                BasicConv2d(192, 192, (1, 3), padding=(0, 1)),
                BasicConv2d(192, 192, (3, 1), padding=(1, 0)),
            ),
        ],
        384, 1792, scale, relu,
    )


class _Concat(nn.Module):
    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


def reduction_a() -> _Concat:
    """35x35x256 -> 17x17x896."""
    return _Concat([
        BasicConv2d(256, 384, 3, stride=2),
        nn.Sequential(
            BasicConv2d(256, 192, 1),
            BasicConv2d(192, 192, 3, padding=1),
            BasicConv2d(192, 256, 3, stride=2),
        ),
        nn.MaxPool2d(3, stride=2),
    ])


def reduction_b() -> _Concat:
    """17x17x896 -> 8x8x1792."""
    return _Concat([
        nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 384, 3, stride=2)),
        nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, stride=2)),
        nn.Sequential(
            BasicConv2d(896, 256, 1),
            BasicConv2d(256, 256, 3, padding=1),
            BasicConv2d(256, 256, 3, stride=2),
        ),
        nn.MaxPool2d(3, stride=2),
    ])


class InceptionResNetV1(nn.Module):
    """(N, 3, H, W) -> (N, embedding_size)."""

    def __init__(self, opts: InceptionResNetV1Options):
        super().__init__()
        self.input_size = tuple(opts.input_size)
        self.embedding_size = opts.embedding_size
        self.stem = nn.Sequential(
            BasicConv2d(3, 32, 3, stride=2),
            BasicConv2d(32, 32, 3),
            BasicConv2d(32, 64, 3, padding=1),
            nn.MaxPool2d(3, stride=2),
            BasicConv2d(64, 80, 1),
            BasicConv2d(80, 192, 3),
            BasicConv2d(192, 256, 3, stride=2),
        )
        self.repeat_1 = nn.Sequential(*[block35(0.17) for _ in range(5)])
        self.mixed_6a = reduction_a()
        self.repeat_2 = nn.Sequential(*[block17(0.10) for _ in range(10)])
        self.mixed_7a = reduction_b()
        self.repeat_3 = nn.Sequential(*[block8(0.20) for _ in range(5)])
        self.block8 = block8(1.0, relu=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(opts.dropout) if opts.dropout > 0 else nn.Identity()
        self.last_linear = nn.Linear(1792, opts.embedding_size, bias=False)
        self.last_bn = nn.BatchNorm1d(opts.embedding_size, eps=1e-3)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.repeat_1(x)
        x = self.mixed_6a(x)
        x = self.repeat_2(x)
        x = self.mixed_7a(x)
        x = self.repeat_3(x)
        x = self.block8(x)
        x = torch.flatten(self.pool(x), 1)
        x = self.last_linear(self.dropout(x))
        return self.last_bn(x)


def build_inception_resnet_v1(opts: InceptionResNetV1Options | None = None) -> InceptionResNetV1:
    """FaceNet Inception-ResNet-v1; ``weights=PATH`` loads a facenet-pytorch state dict."""
    opts = opts or InceptionResNetV1Options()
    model = InceptionResNetV1(opts)
    if opts.weights:
        from facebench_plugins.backbones._import import load_published

        load_published(model, opts.weights, family="facenet", option="inception_resnet_v1.weights")
    return model
