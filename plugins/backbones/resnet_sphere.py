"""SphereFace's residual networks: resnet20 and resnet36 (OpenSphere's sfnet20 / sfnet36).

Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition",
CVPR 2017, Table 2.  Four stages of 64, 128, 256 and 512 channels; each stage
opens with a 3x3 stride-2 convolution and holds 1, 2, 4, 1 (20 layers) or
2, 4, 8, 2 (36 layers) residual units of two 3x3 convolutions.  Activations
are PReLU, there is no BatchNorm (an option adds it, as OpenSphere's
``*_bn`` variants do), and a fully connected layer maps the last feature map
to the embedding.

Initialisation follows the SphereFace Caffe model: Xavier for the stage
convolutions, a Gaussian of std 0.01 for the convolutions inside residual
units (so each unit starts close to the identity, which is what lets the
un-normalised network train).
"""

from __future__ import annotations

import torch
from torch import nn

from facebench_plugins.backbones.options import SphereResNetOptions

__all__ = ["SphereResNet", "build_resnet20", "build_resnet36", "STAGE_UNITS"]

#: residual units per stage
STAGE_UNITS = {20: (1, 2, 4, 1), 36: (2, 4, 8, 2)}
CHANNELS = (64, 128, 256, 512)


def _out_size(size: int, stages: int = 4) -> int:
    # a 3x3 stride-2 convolution with padding 1 maps n to ceil(n / 2)
    for _ in range(stages):
        size = (size + 1) // 2
    return size


class _ConvAct(nn.Sequential):
    """3x3 convolution (+ BatchNorm) + PReLU."""

    def __init__(self, cin: int, cout: int, stride: int, batch_norm: bool):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.PReLU(cout))
        super().__init__(*layers)


class _Unit(nn.Module):
    """x + PReLU(conv(PReLU(conv(x)))) — SphereFace's residual unit."""

    def __init__(self, channels: int, batch_norm: bool):
        super().__init__()
        self.body = nn.Sequential(
            _ConvAct(channels, channels, 1, batch_norm),
            _ConvAct(channels, channels, 1, batch_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SphereResNet(nn.Module):
    """SphereFace residual network: (N, 3, H, W) -> (N, embedding_size)."""

    def __init__(self, depth: int, opts: SphereResNetOptions):
        super().__init__()
        if depth not in STAGE_UNITS:
            raise ValueError(f"SphereFace ResNet depth {depth} unknown; known: {sorted(STAGE_UNITS)}")
        self.depth = depth
        self.input_size = tuple(opts.input_size)
        self.embedding_size = opts.embedding_size
        stages = []
        cin = 3
        for cout, units in zip(CHANNELS, STAGE_UNITS[depth]):
            stages.append(
                nn.Sequential(
                    _ConvAct(cin, cout, 2, opts.batch_norm),
                    *[_Unit(cout, opts.batch_norm) for _ in range(units)],
                )
            )
            cin = cout
        self.stages = nn.Sequential(*stages)
        h, w = (_out_size(s) for s in self.input_size)
        self.dropout = nn.Dropout(opts.dropout) if opts.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(CHANNELS[-1] * h * w, opts.embedding_size)
        self._init_weights()

    def _init_weights(self) -> None:
        for stage in self.stages:
            for m in stage.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
            for unit in stage[1:]:
                for m in unit.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.normal_(m.weight, 0.0, 0.01)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(x)
        x = torch.flatten(x, 1)
        return self.fc(self.dropout(x))


def build_resnet20(opts: SphereResNetOptions | None = None) -> SphereResNet:
    """SphereFace ResNet-20 (OpenSphere sfnet20)."""
    return SphereResNet(20, opts or SphereResNetOptions())


def build_resnet36(opts: SphereResNetOptions | None = None) -> SphereResNet:
    """SphereFace ResNet-36 (OpenSphere sfnet36)."""
    return SphereResNet(36, opts or SphereResNetOptions())
