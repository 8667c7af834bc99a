"""The named peer of ``bench_backbones.py``: a plain eager IR-50 / IR-100 training step.

Written here after the layout of insightface arcface_torch's
``backbones/iresnet.py`` (the network most ArcFace users train), with none of
facebench's machinery: no engine, no ``Precision``, no ``StepFunction``.

* stem: 3x3 stride-1 conv (64) - BN - PReLU, so 112x112 stays 112x112;
* basic block: BN - 3x3 conv - BN - PReLU - 3x3 conv (the stride is on this
  second conv) - BN, plus the shortcut (1x1 strided conv - BN where the shape
  changes);
* stages of 64/128/256/512 channels, (3, 4, 14, 3) blocks for depth 50 and
  (3, 13, 30, 3) for 100, the first block of each stage strided by 2;
* head: BN - dropout - FC (512 x 7 x 7 -> 512) - BN1d with its scale frozen at 1.

:func:`reference_step` is arcface_torch's loop body: autocast forward, the
margin head's loss in float32, backward, gradient-norm clip at 5, SGD step.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2, self.prelu = nn.BatchNorm2d(cout), nn.PReLU(cout)
        self.conv2, self.bn3 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.down is None else self.down(x))


class IResNet(nn.Module):
    """IR-``depth`` for 112x112 faces: (N, 3, 112, 112) -> (N, 512)."""

    def __init__(self, depth: int = 50, embedding_size: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        blocks, cin = [], 64
        for cout, n in zip((64, 128, 256, 512), UNITS[depth]):
            blocks += [Block(cin, cout, 2)] + [Block(cout, cout, 1) for _ in range(n - 1)]
            cin = cout
        self.body = nn.Sequential(*blocks)
        self.bn, self.dropout = nn.BatchNorm2d(512), nn.Dropout(dropout)
        self.fc, self.features = nn.Linear(512 * 7 * 7, embedding_size), nn.BatchNorm1d(embedding_size)
        self.features.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.body(self.stem(x)))
        return self.features(self.fc(self.dropout(torch.flatten(x, 1))))


def reference_step(model: nn.Module, head: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   bf16: bool) -> Callable[[], float]:
    """One training step of ``model`` + ``head`` (the margin loss) on (x, y): returns the step."""
    params = [p for p in (*model.parameters(), *head.parameters()) if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            emb = model(x)
        loss = head(emb.float(), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        return float(loss.detach())

    return step
