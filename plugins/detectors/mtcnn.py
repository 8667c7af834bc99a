"""MTCNN (Zhang et al. 2016): P-Net → R-Net → O-Net, written here in PyTorch.

Loads facenet-pytorch's weights (``weights/mtcnn/{pnet,rnet,onet}.pt``) and
follows facenet-pytorch 2.6.0's inference rules so the two agree box for box:

1. image pyramid: scales ``12/min_face · factor^k`` while the short side stays
   ≥ 12 px; each level is an area resize to ``int(h·s + 1) × int(w·s + 1)``;
2. P-Net on each level, candidates where p(face) ≥ ``thresholds[0]``, NMS 0.5
   per level and 0.7 over all levels; box regression; squared boxes;
3. the box regions (clipped to the image, not zero-padded — as facenet-pytorch
   does) are area-resized to 24 × 24 for R-Net, p > ``thresholds[1]``, NMS
   0.7, regression, squaring;
4. the same at 48 × 48 for O-Net, p > ``thresholds[2]``, landmarks, regression
   and a final "Min"-overlap NMS 0.7.

What makes it faster than the reference (see ``benchmarks/bench_mtcnn.py``):
the crops for R-Net and O-Net are cut and area-resized for all boxes at once
from one integral image (an exact rewrite of adaptive average pooling),
instead of one ``interpolate`` call per box; NMS runs in OpenCV's C++;
P-Net runs channels-last; everything runs under ``torch.inference_mode``.

Boxes are returned as the cascade regresses them (they may extend past the
image border), scores are O-Net's face probability, landmarks are left eye,
right eye, nose, left and right mouth corner (image left/right).
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

from facebench_plugins.detectors import WEIGHTS, MtcnnOptions
from facebench_plugins.detectors._common import check_image

__all__ = ["MTCNN", "ONet", "PNet", "RNet", "build", "nms", "pyramid_scales"]


# ---------------------------------------------------------------- networks
def max_pool_ceil(x: torch.Tensor, k: int, s: int = 2) -> torch.Tensor:
    """``F.max_pool2d(x, k, s, ceil_mode=True)``, exactly, as elementwise maxima of strided
    views (-inf padding on the right and bottom).

    On CPU PyTorch's max-pool kernel is 4-15x slower than this for MTCNN's
    10-64-channel maps (2.9 ms vs 0.2 ms for P-Net's 10 x 148 x 148, one thread);
    pooling was a quarter of the detector's time.
    """
    h, w = x.shape[-2:]
    if h < k or w < k:
        return F.max_pool2d(x, k, s, ceil_mode=True)
    oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    ph, pw = (oh - 1) * s + k - h, (ow - 1) * s + k - w
    if ph > 0 or pw > 0:
        x = F.pad(x, (0, max(pw, 0), 0, max(ph, 0)), value=float("-inf"))
    span_h, span_w = s * (oh - 1) + 1, s * (ow - 1) + 1
    r = x[:, :, 0:span_h:s]
    for i in range(1, k):
        r = torch.maximum(r, x[:, :, i:i + span_h:s])
    out = r[..., 0:span_w:s]
    for j in range(1, k):
        out = torch.maximum(out, r[..., j:j + span_w:s])
    return out


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12 × 12 window, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / non-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = max_pool_ceil(x, 2)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refine net on 24 × 24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = max_pool_ceil(x, 3)
        x = self.prelu2(self.conv2(x))
        x = max_pool_ceil(x, 3)
        x = self.prelu3(self.conv3(x))
        # the weights were converted from Caffe/TF with (W, H, C) flattening
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu4(self.dense4(x))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48 × 48 crops: score, box regression, 5 landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = max_pool_ceil(x, 3)
        x = self.prelu2(self.conv2(x))
        x = max_pool_ceil(x, 3)
        x = self.prelu3(self.conv3(x))
        x = max_pool_ceil(x, 2)
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        x = self.prelu5(self.dense5(x))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


# ------------------------------------------------------------------ helpers
def pyramid_scales(height: int, width: int, min_face: int, factor: float) -> list[float]:
    """Scales of the image pyramid: 12/min_face · factor^k while the short side ≥ 12 px."""
    m = 12.0 / min_face
    minl = min(height, width) * m
    scales, s = [], m
    while minl >= 12:
        scales.append(s)
        s *= factor
        minl *= factor
    return scales


def nms(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS within each group (image); IoU without the +1 pixel convention.

    Same rule as ``torchvision.ops.batched_nms``: highest score first, a box is
    dropped when its IoU with a kept box exceeds ``iou``.
    """
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, np.float64)
    offset = groups.astype(np.float64)[:, None] * (boxes.max() + 1.0)
    b = boxes + offset
    rects = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)
    keep = cv2.dnn.NMSBoxes(rects.tolist(), np.asarray(scores, np.float64).tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def nms_min(boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS with the "Min" overlap (intersection / smaller area) and +1 pixel areas,
    as MTCNN's last stage; ties broken like numpy's ``argsort`` of the scores."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    boxes = np.asarray(boxes, np.float32)
    offset = groups.astype(np.float32)[:, None] * (boxes.max() + 1)
    b = boxes + offset
    x1, y1, x2, y2 = b.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(np.asarray(scores, np.float32))
    keep = []
    while order.size:
        i = order[-1]
        keep.append(i)
        rest = order[:-1]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / np.minimum(area[i], area[rest]) <= iou]
    return np.asarray(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Make boxes square around their centre (side = the longer side)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """R-/O-Net box regression (offsets in units of the +1-pixel width/height)."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, 0] = boxes[:, 0] + reg[:, 0] * w
    out[:, 1] = boxes[:, 1] + reg[:, 1] * h
    out[:, 2] = boxes[:, 2] + reg[:, 2] * w
    out[:, 3] = boxes[:, 3] + reg[:, 3] * h
    return out


def _crop_bounds(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, ...]:
    """Integer crop rows/cols [y0, y1) × [x0, x1), clipped to the image."""
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], width)
    y1 = np.minimum(b[:, 3], height)
    return y0, y1, x0, x1


def _pool_index(start: np.ndarray, stop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive-average-pool cell bounds (PyTorch's rule) of [start, stop) into ``size`` cells."""
    length = (stop - start)[:, None]
    i = np.arange(size)[None, :]
    lo = start[:, None] + (i * length) // size
    hi = start[:, None] - ((-(i + 1) * length) // size)
    return lo, hi


class _Integral:
    """Integral images of a batch, for exact area-resized crops of many boxes at once."""

    def __init__(self, images: torch.Tensor) -> None:
        # images: (B, 3, H, W) float32 in [0, 255]; float64 sums are exact here
        s = images.to(torch.float64).cumsum(2).cumsum(3)
        self.table = F.pad(s, (1, 0, 1, 0)).permute(0, 2, 3, 1).contiguous()  # (B, H+1, W+1, 3)

    def crops(self, index: np.ndarray, y0, y1, x0, x1, size: int) -> torch.Tensor:
        """(N, 3, size, size) area-resized crops = ``interpolate(crop, size, mode='area')``."""
        ylo, yhi = _pool_index(y0, y1, size)
        xlo, xhi = _pool_index(x0, x1, size)
        t = self.table
        b = torch.from_numpy(index)[:, None, None]
        ylo_t, yhi_t = torch.from_numpy(ylo)[:, :, None], torch.from_numpy(yhi)[:, :, None]
        xlo_t, xhi_t = torch.from_numpy(xlo)[:, None, :], torch.from_numpy(xhi)[:, None, :]
        total = t[b, yhi_t, xhi_t] - t[b, ylo_t, xhi_t] - t[b, yhi_t, xlo_t] + t[b, ylo_t, xlo_t]
        count = torch.from_numpy(((yhi - ylo)[:, :, None] * (xhi - xlo)[:, None, :]).astype(np.float64))
        out = (total / count[..., None]).to(torch.float32)  # (N, size, size, 3)
        return out.permute(0, 3, 1, 2).contiguous()


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


# ----------------------------------------------------------------- detector
class MTCNN:
    """The MTCNN cascade; ``detect`` / ``detect_batch`` give :class:`Detections`."""

    has_landmarks = True

    def __init__(self, options: MtcnnOptions | None = None) -> None:
        self.options = options or MtcnnOptions()
        if self.options.threads > 0:
            torch.set_num_threads(self.options.threads)
        explicit = self.options.weights_dir or None
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.weights_paths = {}
        for net, key in ((self.pnet, "mtcnn_pnet"), (self.rnet, "mtcnn_rnet"), (self.onet, "mtcnn_onet")):
            path = locate_weights(WEIGHTS[key], explicit)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            net.eval()
            self.weights_paths[key] = path
        # channels-last convolutions are measurably faster for P-Net's 3-10-16-32 channel stack
        self.pnet.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------ public
    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in many images; images of equal size share each network call."""
        images = [check_image(im) for im in images]
        out: list[Detections | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(im.shape, []).append(i)
        bs = max(1, self.options.batch_size)
        for idx in groups.values():
            for start in range(0, len(idx), bs):
                chunk = idx[start:start + bs]
                for i, det in zip(chunk, self._detect_same_size([images[i] for i in chunk])):
                    out[i] = det
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------ stages
    @torch.inference_mode()
    def _detect_same_size(self, images: list[np.ndarray]) -> list[Detections]:
        o = self.options
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(torch.float32)
        n, _, h, w = batch.shape

        # ---- stage 1: P-Net over the pyramid
        all_boxes, all_inds = [], []
        for scale in pyramid_scales(h, w, o.min_face, o.factor):
            level = F.interpolate(batch, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, prob = self.pnet(_normalise(level).contiguous(memory_format=torch.channels_last))
            boxes, inds = self._candidates(reg, prob[:, 1], scale, o.thresholds[0])
            if len(boxes):
                keep = nms(boxes[:, :4], boxes[:, 4], inds, o.nms[0])
                all_boxes.append(boxes[keep])
                all_inds.append(inds[keep])
        if not all_boxes:
            return [Detections.empty() for _ in range(n)]
        boxes = np.concatenate(all_boxes)
        inds = np.concatenate(all_inds)
        keep = nms(boxes[:, :4], boxes[:, 4], inds, o.nms[1])
        boxes, inds = boxes[keep], inds[keep]
        w_ = boxes[:, 2] - boxes[:, 0]
        h_ = boxes[:, 3] - boxes[:, 1]
        refined = np.stack([
            boxes[:, 0] + boxes[:, 5] * w_, boxes[:, 1] + boxes[:, 6] * h_,
            boxes[:, 2] + boxes[:, 7] * w_, boxes[:, 3] + boxes[:, 8] * h_,
        ], axis=1)
        boxes = _square(refined)

        integral = _Integral(batch)

        # ---- stage 2: R-Net
        boxes, inds, crops = self._crops(integral, boxes, inds, w, h, 24)
        if len(boxes) == 0:
            return [Detections.empty() for _ in range(n)]
        reg, prob = self.rnet(_normalise(crops))
        score = prob[:, 1].numpy()
        ok = score > o.thresholds[1]
        boxes, inds, score, reg = boxes[ok], inds[ok], score[ok], reg.numpy()[ok]
        keep = nms(boxes, score, inds, o.nms[2])
        boxes, inds, score, reg = boxes[keep], inds[keep], score[keep], reg[keep]
        boxes = _square(_regress(boxes, reg))

        # ---- stage 3: O-Net
        boxes, inds, crops = self._crops(integral, boxes, inds, w, h, 48)
        if len(boxes) == 0:
            return [Detections.empty() for _ in range(n)]
        reg, pts, prob = self.onet(_normalise(crops))
        score = prob[:, 1].numpy()
        ok = score > o.thresholds[2]
        boxes, inds, score = boxes[ok], inds[ok], score[ok]
        reg, pts = reg.numpy()[ok], pts.numpy()[ok]
        bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = np.stack(
            [bw * pts[:, :5] + boxes[:, :1] - 1, bh * pts[:, 5:] + boxes[:, 1:2] - 1], axis=2
        )
        boxes = _regress(boxes, reg)
        keep = nms_min(boxes, score, inds, o.nms[3])
        boxes, inds, score, landmarks = boxes[keep], inds[keep], score[keep], landmarks[keep]

        result = []
        for b in range(n):
            sel = np.nonzero(inds == b)[0]
            sel = sel[np.argsort(-score[sel], kind="stable")]
            result.append(Detections(boxes[sel], score[sel], landmarks[sel]))
        return result

    @staticmethod
    def _candidates(reg: torch.Tensor, prob: torch.Tensor, scale: float, threshold: float):
        """P-Net cells with p(face) ≥ threshold as (K, 9) [x1, y1, x2, y2, score, 4 offsets]."""
        mask = prob >= threshold
        idx = mask.nonzero()
        if len(idx) == 0:
            return np.zeros((0, 9), np.float32), np.zeros((0,), np.int64)
        score = prob[mask]
        offsets = reg.permute(0, 2, 3, 1)[mask]
        xy = idx[:, [2, 1]].to(reg.dtype)  # (x, y) of the cell
        q1 = ((2 * xy + 1) / scale).floor()
        q2 = ((2 * xy + 12) / scale).floor()
        boxes = torch.cat([q1, q2, score[:, None], offsets], dim=1).numpy()
        return boxes, idx[:, 0].numpy()

    @staticmethod
    def _crops(integral: _Integral, boxes, inds, width: int, height: int, size: int):
        y0, y1, x0, x1 = _crop_bounds(boxes, width, height)
        ok = (y1 > y0) & (x1 > x0)  # boxes wholly outside the image have no crop
        if not ok.all():
            boxes, inds, y0, y1, x0, x1 = boxes[ok], inds[ok], y0[ok], y1[ok], x0[ok], x1[ok]
        if len(boxes) == 0:
            return boxes, inds, None
        return boxes, inds, integral.crops(inds, y0, y1, x0, x1, size)


def build(options: MtcnnOptions | None = None) -> MTCNN:
    return MTCNN(options)
