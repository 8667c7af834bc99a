"""RetinaFace with a MobileNet-0.25 backbone, written here in PyTorch.

Architecture and inference follow biubug6/Pytorch_Retinaface and
Face-Detector-1MB-with-landmark (the weights' source): MobileNetV1 ×0.25
(three stages) → 3-level FPN
(64 channels) → SSH context modules → per-level 1×1 heads with two anchors
per position for scores, box offsets and five landmarks.  Anchors
(``priors``): min sizes [[10, 20], [32, 64], [128, 256]] at strides
[8, 16, 32]; offsets decoded with variances [0.1, 0.2].  Input is BGR minus
(104, 117, 123), no scaling.

Activations are plain ReLU.  Pytorch_Retinaface's net.py uses LeakyReLU 0.1
in the backbone, FPN and SSH; with these weights that was measured to be
wrong (on ``multiface.jpg``: 14 detections above 0.5 instead of 6, landmarks
15–30 px from MTCNN's), while ReLU gives the 6 faces with landmarks 2–6 px
from MTCNN's — the weights were trained with negative slope 0.

Differences from biubug6's detect.py: NMS uses the IoU without the +1 pixel
convention (OpenCV's NMSBoxes); boxes are clipped to nothing (they may pass
the border slightly).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.types import Detections
from harness.weights import locate_weights

from facebench_plugins.detectors import WEIGHTS, RetinafaceOptions
from facebench_plugins.detectors._common import check_image, empty, order_landmarks

__all__ = ["RetinaFace", "RetinafaceDetector", "build", "priors"]

MIN_SIZES = ((10, 20), (32, 64), (128, 256))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)


def _conv_bn(cin: int, cout: int, stride: int = 1, relu: bool = True, k: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3×3 + pointwise 1×1, each with BN and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class MobileNetV1x025(nn.Module):
    """The three feature stages (strides 8, 16, 32; 64, 128, 256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2), _conv_dw(8, 16, 1), _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1), _conv_dw(32, 64, 2), _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class FPN(nn.Module):
    def __init__(self, channels: Sequence[int] = (64, 128, 256), out: int = 64) -> None:
        super().__init__()
        self.output1 = _conv_bn(channels[0], out, k=1)
        self.output2 = _conv_bn(channels[1], out, k=1)
        self.output3 = _conv_bn(channels[2], out, k=1)
        self.merge1 = _conv_bn(out, out)
        self.merge2 = _conv_bn(out, out)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Single-stage headless context module: 3×3, 5×5 and 7×7 receptive branches."""

    def __init__(self, cin: int = 64, out: int = 64) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(cin, out // 2, relu=False)
        self.conv5X5_1 = _conv_bn(cin, out // 4)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, relu=False)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.conv3X3(x)
        b5_1 = self.conv5X5_1(x)
        b5 = self.conv5X5_2(b5_1)
        b7 = self.conv7x7_3(self.conv7X7_2(b5_1))
        return F.relu(torch.cat([b3, b5, b7], dim=1))


class _Head(nn.Module):
    def __init__(self, cin: int, per_anchor: int, anchors: int = 2) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(cin, anchors * per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    """The network: image (N, 3, H, W) → (box offsets, class logits, landmark offsets) per anchor."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MobileNetV1x025()
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
        self.ClassHead = nn.ModuleList([_Head(64, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(64, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(64, 10) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.fpn(self.body(x))
        feats = [self.ssh1(f[0]), self.ssh2(f[1]), self.ssh3(f[2])]
        loc = torch.cat([h(t) for h, t in zip(self.BboxHead, feats)], dim=1)
        conf = torch.cat([h(t) for h, t in zip(self.ClassHead, feats)], dim=1)
        landm = torch.cat([h(t) for h, t in zip(self.LandmarkHead, feats)], dim=1)
        return loc, conf, landm


def priors(height: int, width: int) -> np.ndarray:
    """Anchors (A, 4) as (cx, cy, w, h) normalised by the image size, in the heads' order."""
    out = []
    for sizes, step in zip(MIN_SIZES, STEPS):
        fh, fw = -(-height // step), -(-width // step)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (xs + 0.5) * step / width
        cy = (ys + 0.5) * step / height
        per = [np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], -1) for s in sizes]
        out.append(np.stack(per, axis=2).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


class RetinafaceDetector:
    has_landmarks = True

    def __init__(self, options: RetinafaceOptions | None = None) -> None:
        self.options = options or RetinafaceOptions()
        if self.options.threads > 0:
            torch.set_num_threads(self.options.threads)
        self.weights_path = locate_weights(WEIGHTS["retinaface_mnet025"], self.options.weights or None)
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        self.net = RetinaFace()
        self.net.load_state_dict(state)
        self.net.eval()
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def _prior(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._priors:
            self._priors[(h, w)] = priors(h, w)
        return self._priors[(h, w)]

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    @torch.inference_mode()
    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Images of equal size share one forward pass."""
        images = [check_image(im) for im in images]
        out: list[Detections | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape, []).append(i)
        for idx in groups.values():
            batch = np.stack([self._prepare(images[i]) for i in idx])
            loc, conf, landm = self.net(torch.from_numpy(batch))
            scores = torch.softmax(conf, dim=-1)[..., 1].numpy()
            h, w = batch.shape[2:]
            for k, i in enumerate(idx):
                out[i] = self._decode(loc[k].numpy(), scores[k], landm[k].numpy(), h, w, images[i].shape)
        return out  # type: ignore[return-value]

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        if self.options.scale != 1.0:
            image = cv2.resize(image, None, fx=self.options.scale, fy=self.options.scale,
                               interpolation=cv2.INTER_LINEAR)
        bgr = image[:, :, ::-1].astype(np.float32) - np.asarray(MEAN_BGR, np.float32)
        return np.ascontiguousarray(bgr.transpose(2, 0, 1))

    def _decode(self, loc, scores, landm, h: int, w: int, shape) -> Detections:
        o = self.options
        keep = np.nonzero(scores > o.score_threshold)[0]
        if keep.size == 0:
            return empty(True)
        keep = keep[np.argsort(-scores[keep], kind="stable")][: o.top_k]
        pri = self._prior(h, w)[keep]
        loc, landm, sc = loc[keep], landm[keep], scores[keep]
        centre = pri[:, :2] + loc[:, :2] * VARIANCE[0] * pri[:, 2:]
        size = pri[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        pts = pri[:, None, :2] + landm.reshape(-1, 5, 2) * VARIANCE[0] * pri[:, None, 2:]
        # back to input pixels, then undo the optional resize
        boxes = boxes * np.array([w, h, w, h], np.float32) / o.scale
        pts = pts * np.array([w, h], np.float32) / o.scale
        rects = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)
        kept = np.asarray(cv2.dnn.NMSBoxes(rects.tolist(), sc.tolist(), 0.0, o.nms), np.int64).reshape(-1)
        kept = kept[np.argsort(-sc[kept], kind="stable")][: o.keep_top_k]
        return Detections(boxes[kept], sc[kept], order_landmarks(pts[kept]))


def build(options: RetinafaceOptions | None = None) -> RetinafaceDetector:
    return RetinafaceDetector(options)
