"""ArcFace's LResNet-E-IR: lresnet50 (IR-50) and lresnet100 (IR-100).

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
Recognition", CVPR 2019, section 3.2 / insightface ``L_Resnet_E_IR``:

* input stem: 3x3 stride-1 convolution (not 7x7 stride 2), BN, PReLU, so a
  112x112 face keeps 112x112 resolution into the first stage;
* improved residual unit "IR": BN - 3x3 conv - BN - PReLU - 3x3 conv (stride
  on the second convolution) - BN, added to the shortcut (a 1x1 stride-2
  convolution + BN where the shape changes);
* four stages of 64, 128, 256, 512 channels with (3, 4, 14, 3) units for 50
  layers and (3, 13, 30, 3) for 100, each stage halving the resolution;
* output head "E": BN - Dropout - FC - BN, giving a 512-d embedding from the
  7x7x512 map.

The last BatchNorm's scale is fixed at 1 (not trained), as in insightface's
arcface_torch; it still counts as a parameter (the published 43.59 M / 65.16 M
include it).
"""

from __future__ import annotations

import torch
from torch import nn

from facebench_plugins.backbones.options import LResNetOptions

__all__ = ["LResNet", "build_lresnet50", "build_lresnet100", "STAGE_UNITS"]

STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
CHANNELS = (64, 128, 256, 512)


def _out_size(size: int, stages: int = 4) -> int:
    for _ in range(stages):
        size = (size + 1) // 2  # 3x3 stride 2 pad 1, and 1x1 stride 2: ceil(n / 2)
    return size


class IRBlock(nn.Module):
    """BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class LResNet(nn.Module):
    """LResNet-E-IR: (N, 3, H, W) -> (N, embedding_size)."""

    def __init__(self, depth: int, opts: LResNetOptions):
        super().__init__()
        if depth not in STAGE_UNITS:
            raise ValueError(f"LResNet depth {depth} unknown; known: {sorted(STAGE_UNITS)}")
        self.depth = depth
        self.input_size = tuple(opts.input_size)
        self.embedding_size = opts.embedding_size
        self.stem = nn.Sequential(
            nn.Conv2d(3, CHANNELS[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(CHANNELS[0]),
            nn.PReLU(CHANNELS[0]),
        )
        stages = []
        cin = CHANNELS[0]
        for cout, units in zip(CHANNELS, STAGE_UNITS[depth]):
            blocks = [IRBlock(cin, cout, 2)] + [IRBlock(cout, cout, 1) for _ in range(units - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.Sequential(*stages)
        h, w = (_out_size(s) for s in self.input_size)
        # output head "E": BN - Dropout - FC - BN
        self.bn = nn.BatchNorm2d(CHANNELS[-1])
        self.dropout = nn.Dropout(opts.dropout) if opts.dropout > 0 else nn.Identity()
        self.fc = nn.Linear(CHANNELS[-1] * h * w, opts.embedding_size)
        self.features = nn.BatchNorm1d(opts.embedding_size)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # zero the last BN of each residual body: every unit starts as the identity
        for m in self.modules():
            if isinstance(m, IRBlock):
                nn.init.zeros_(m.body[-1].weight)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.features.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        x = self.bn(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        return self.features(x)


def _build(depth: int, opts: LResNetOptions | None) -> LResNet:
    opts = opts or LResNetOptions()
    model = LResNet(depth, opts)
    if opts.weights:  # arcface_torch iresnet{depth} or facebench's own state dict
        from facebench_plugins.backbones._import import load_published

        load_published(model, opts.weights, family="iresnet", option=f"lresnet{depth}.weights")
    return model


def build_lresnet50(opts: LResNetOptions | None = None) -> LResNet:
    """LResNet50E-IR (IR-50); ``weights=PATH`` loads an arcface_torch iresnet50 state dict."""
    return _build(50, opts)


def build_lresnet100(opts: LResNetOptions | None = None) -> LResNet:
    """LResNet100E-IR (IR-100); ``weights=PATH`` loads an arcface_torch iresnet100 state dict."""
    return _build(100, opts)
