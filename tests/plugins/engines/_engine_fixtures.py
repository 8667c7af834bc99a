"""Tiny models and data for the torch engine tests (no registry needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.specs import BackboneSpec
from harness.types import ImageSet

EMB = 16


def tiny_spec(size: int = 32, emb: int = EMB) -> BackboneSpec:
    return BackboneSpec(
        name="tinynet", summary="tiny test CNN", factory=lambda o: TinyNet(emb),
        framework="torch", input_size=(size, size), embedding_size=emb,
    )


class TinyNet(nn.Module):
    """conv-BN-PReLU x2, dropout, linear -> BN1d embedding."""

    def __init__(self, emb: int = EMB, width: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.PReLU(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.act2 = nn.PReLU(2 * width)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * width * 16, emb)
        self.features = nn.BatchNorm1d(emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.drop(torch.flatten(self.pool(x), 1))
        return self.features(self.fc(x))


class SoftmaxLoss(nn.Module):
    """A plain linear classifier + cross-entropy, with logits() for accuracy."""

    def __init__(self, embedding_size: int = EMB, num_classes: int = 10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_size) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_classes))

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(emb, self.weight, self.bias)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb), labels)


def random_imageset(n: int = 64, classes: int = 8, size: int = 40, seed: int = 0,
                    delay: float = 0.0) -> ImageSet:
    """Class-dependent random colour images (learnable), deterministic from seed."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    base = rng.integers(0, 256, size=(classes, 3), dtype=np.int64)
    imgs = []
    for i in range(n):
        noise = rng.integers(-60, 60, size=(size, size, 3))
        imgs.append(np.clip(base[labels[i]] + noise, 0, 255).astype(np.uint8))

    def loader(key: str) -> np.ndarray:
        if delay:
            import time

            time.sleep(delay)
        return imgs[int(key)]

    return ImageSet(keys=[str(i) for i in range(n)], labels=labels, loader=loader,
                    identities=[f"c{c}" for c in range(classes)], aligned="test")


def att_imageset(root: Path, people: range = range(1, 11)) -> ImageSet:
    """AT&T faces s<people>, grayscale PGM -> RGB uint8."""
    import cv2

    keys, labels = [], []
    for label, p in enumerate(people):
        for j in range(1, 11):
            keys.append(str(root / f"s{p}" / f"{j}.pgm"))
            labels.append(label)

    def loader(key: str) -> np.ndarray:
        g = cv2.imread(key, cv2.IMREAD_GRAYSCALE)
        if g is None:
            raise FileNotFoundError(key)
        return np.repeat(g[:, :, None], 3, axis=2)

    return ImageSet(keys=keys, labels=np.array(labels), loader=loader,
                    identities=[f"s{p}" for p in people], aligned="att")
