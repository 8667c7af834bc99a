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

What makes it faster than the reference (``benchmarks/bench_mtcnn.py``,
``docs/mtcnn.md``): pyramid levels and the R-/O-Net crops are area-resized
from one integral image per picture with a few numpy gathers, bit for bit
what ``interpolate(mode="area")`` gives (``_area.py``), instead of one
``interpolate`` call per level and per box; ceil-mode max pooling is done
with strided maxima (PyTorch's CPU kernel is 4-15x slower); P-Net's two 1x1
heads are one convolution; NMS runs in OpenCV's C++; P-Net takes up to
``_PNET_GROUP`` same-size images per call and R-Net / O-Net take the boxes of
all images of a ``detect_batch`` chunk (in cache-sized chunks of
``_NET_CHUNK``), channels-last; everything runs under ``torch.inference_mode``.

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
from facebench_plugins.detectors._area import IntegralTable, pool_bounds
from facebench_plugins.detectors._common import check_image

__all__ = ["MTCNN", "ONet", "PNet", "RNet", "build", "nms", "pyramid_scales"]


# ---------------------------------------------------------------- networks
def max_pool_ceil(x: torch.Tensor, k: int, s: int = 2) -> torch.Tensor:
    """``F.max_pool2d(x, k, s, ceil_mode=True)``, exactly, as elementwise maxima of strided
    views; the windows that overhang the right or bottom edge take the maximum of
    what they cover (as -inf padding would), without padding a copy.

    On CPU PyTorch's max-pool kernel is 4-15x slower than this for MTCNN's
    10-64-channel maps (2.9 ms vs 0.2 ms for P-Net's 10 x 148 x 148, one thread);
    pooling was a quarter of the detector's time.
    """
    h, w = x.shape[-2:]
    if h < k or w < k:
        return F.max_pool2d(x, k, s, ceil_mode=True)
    return _max_along(_max_along(x, k, s, 2), k, s, 3)


def _max_along(x: torch.Tensor, k: int, s: int, dim: int) -> torch.Tensor:
    """Ceil-mode 1-D max pooling of ``x`` along ``dim`` (window ``k``, stride ``s``)."""
    n = x.shape[dim]
    cells = -(-(n - k) // s) + 1
    out = None
    for i in range(k):
        view = x.narrow(dim, i, n - i)
        count = min(cells, -(-(n - i) // s))
        view = view.as_strided(
            view.shape[:dim] + (count,) + view.shape[dim + 1:],
            view.stride()[:dim] + (view.stride(dim) * s,) + view.stride()[dim + 1:],
            view.storage_offset(),
        )
        if out is None:
            out = view.clone()
        else:
            target = out.narrow(dim, 0, count)
            torch.maximum(target, view, out=target)
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
        # both 1x1 heads as one convolution (the same numbers, one kernel call instead of two)
        weight = torch.cat([self.conv4_1.weight, self.conv4_2.weight])
        out = F.conv2d(x, weight, torch.cat([self.conv4_1.bias, self.conv4_2.bias]))
        return out[:, 2:], torch.softmax(out[:, :2], dim=1)


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


def _crop_bounds(boxes: np.ndarray, width, height) -> tuple[np.ndarray, ...]:
    """Integer crop rows/cols [y0, y1) × [x0, x1), clipped to the image (sizes: ints or per box)."""
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x0 = np.maximum(b[:, 0], 1) - 1
    y0 = np.maximum(b[:, 1], 1) - 1
    x1 = np.minimum(b[:, 2], width)
    y1 = np.minimum(b[:, 3], height)
    return y0, y1, x0, x1


class _Integral:
    """Integral images of a (B, 3, H, W) tensor batch, for area-resized crops of many boxes at
    once (used by ``cascade_cnn``; MTCNN itself uses :class:`IntegralTable`)."""

    def __init__(self, images: torch.Tensor) -> None:
        # images: (B, 3, H, W) float32 in [0, 255]; float64 sums are exact here
        s = images.to(torch.float64).cumsum(2).cumsum(3)
        self.table = F.pad(s, (1, 0, 1, 0)).permute(0, 2, 3, 1).contiguous()  # (B, H+1, W+1, 3)

    def crops(self, index: np.ndarray, y0, y1, x0, x1, size: int) -> torch.Tensor:
        """(N, 3, size, size) area-resized crops = ``interpolate(crop, size, mode='area')``."""
        ylo, yhi = pool_bounds(y0, y1, size)
        xlo, xhi = pool_bounds(x0, x1, size)
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
_NET_CHUNK = 64  # R-/O-Net crops per forward call: larger batches fall out of cache on CPU
_PNET_GROUP = 8  # same-size images per P-Net call (fewer calls; small enough to stay in cache)


def _as_nchw(x: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) float32 numpy → (N, 3, H, W) channels-last tensor sharing its memory."""
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def _run_net(net: nn.Module, x: torch.Tensor) -> list[np.ndarray]:
    """``net`` over ``x`` in chunks of ``_NET_CHUNK``; outputs concatenated, as numpy."""
    outs = [net(x[i:i + _NET_CHUNK]) for i in range(0, len(x), _NET_CHUNK)]
    return [torch.cat(parts).numpy() if len(parts) > 1 else parts[0].numpy() for parts in zip(*outs)]


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
        # R-Net and O-Net run channels-last (the crops are built (N, H, W, 3) in numpy and
        # oneDNN is faster on that layout for them); P-Net's 10-channel PReLU is 7x faster
        # on contiguous NCHW maps, which more than pays for transposing each pyramid level.
        self.rnet.to(memory_format=torch.channels_last)
        self.onet.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------ public
    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect in many images (any sizes); R-Net and O-Net run over the boxes of
        ``batch_size`` images together."""
        images = [check_image(im) for im in images]
        bs = max(1, self.options.batch_size)
        out: list[Detections] = []
        for start in range(0, len(images), bs):
            out.extend(self._detect_chunk(images[start:start + bs]))
        return out

    # ------------------------------------------------------------ stages
    @torch.inference_mode()
    def _detect_chunk(self, images: list[np.ndarray]) -> list[Detections]:
        o = self.options
        n = len(images)
        table = IntegralTable(images)
        same_size: dict[tuple[int, ...], list[int]] = {}
        for k, im in enumerate(images):
            same_size.setdefault(im.shape, []).append(k)
        found = [self._proposals(table, ks[i:i + _PNET_GROUP])
                 for ks in same_size.values() for i in range(0, len(ks), _PNET_GROUP)]
        boxes = np.concatenate([f[0] for f in found])
        inds = np.concatenate([f[1] for f in found])
        if len(boxes) == 0:
            return [Detections.empty() for _ in range(n)]
        sizes = np.array([im.shape[:2] for im in images], np.int64)  # (n, 2) height, width

        # ---- stage 2: R-Net on 24 x 24 crops of every image's proposals
        boxes, inds, crops = self._crops(table, boxes, inds, sizes, 24)
        if len(boxes) == 0:
            return [Detections.empty() for _ in range(n)]
        reg, prob = _run_net(self.rnet, crops)
        score = prob[:, 1]
        ok = score > o.thresholds[1]
        boxes, inds, score, reg = boxes[ok], inds[ok], score[ok], reg[ok]
        keep = nms(boxes, score, inds, o.nms[2])
        boxes = _square(_regress(boxes[keep], reg[keep]))
        inds = inds[keep]

        # ---- stage 3: O-Net on 48 x 48 crops
        boxes, inds, crops = self._crops(table, boxes, inds, sizes, 48)
        if len(boxes) == 0:
            return [Detections.empty() for _ in range(n)]
        reg, pts, prob = _run_net(self.onet, crops)
        score = prob[:, 1]
        ok = score > o.thresholds[2]
        boxes, inds, score, reg, pts = boxes[ok], inds[ok], score[ok], reg[ok], pts[ok]
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

    def _proposals(self, table: IntegralTable, ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1 on images ``ks`` (all of one size): P-Net over the pyramid, NMS per level
        and over all levels (per image), regression and squaring; (K, 4) boxes, image indices."""
        o = self.options
        h, w = table.shapes[ks[0]]
        found, owners = [], []
        for scale in pyramid_scales(h, w, o.min_face, o.factor):
            size = (int(h * scale + 1), int(w * scale + 1))
            level = _normalise(np.stack([table.resize(k, *size) for k in ks]))
            reg, prob = self.pnet(_as_nchw(level).contiguous())
            boxes, local = self._candidates(reg, prob[:, 1], scale, o.thresholds[0])
            if len(boxes):
                keep = nms(boxes[:, :4], boxes[:, 4], local, o.nms[0])
                found.append(boxes[keep])
                owners.append(local[keep])
        if not found:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
        boxes, local = np.concatenate(found), np.concatenate(owners)
        keep = nms(boxes[:, :4], boxes[:, 4], local, o.nms[1])
        boxes, local = boxes[keep], local[keep]
        w_ = boxes[:, 2] - boxes[:, 0]
        h_ = boxes[:, 3] - boxes[:, 1]
        refined = np.stack([
            boxes[:, 0] + boxes[:, 5] * w_, boxes[:, 1] + boxes[:, 6] * h_,
            boxes[:, 2] + boxes[:, 7] * w_, boxes[:, 3] + boxes[:, 8] * h_,
        ], axis=1)
        return _square(refined), np.asarray(ks, np.int64)[local]

    @staticmethod
    def _candidates(reg: torch.Tensor, prob: torch.Tensor, scale: float, threshold: float):
        """P-Net cells with p(face) ≥ threshold as (K, 9) [x1, y1, x2, y2, score, 4 offsets]
        and the index of their image in the batch (float32 arithmetic, as facenet-pytorch)."""
        p = prob.numpy()
        image, y, x = np.nonzero(p >= threshold)
        if len(image) == 0:
            return np.zeros((0, 9), np.float32), np.zeros((0,), np.int64)
        xy = np.stack([x, y], axis=1).astype(np.float32)  # (x, y) of the cell
        s = np.float32(scale)
        boxes = np.concatenate([
            np.floor((2 * xy + 1) / s), np.floor((2 * xy + 12) / s),
            p[image, y, x][:, None], reg.numpy()[image, :, y, x],
        ], axis=1)
        return boxes, image.astype(np.int64)

    @staticmethod
    def _crops(table: IntegralTable, boxes, inds, sizes: np.ndarray, size: int):
        """Boxes that overlap their image, and their normalised (N, 3, size, size) crops."""
        y0, y1, x0, x1 = _crop_bounds(boxes, sizes[inds, 1], sizes[inds, 0])
        ok = (y1 > y0) & (x1 > x0)  # boxes wholly outside the image have no crop
        if not ok.all():
            boxes, inds, y0, y1, x0, x1 = boxes[ok], inds[ok], y0[ok], y1[ok], x0[ok], x1[ok]
        if len(boxes) == 0:
            return boxes, inds, None
        return boxes, inds, _as_nchw(_normalise(table.crops(inds, y0, y1, x0, x1, size)))


def build(options: MtcnnOptions | None = None) -> MTCNN:
    return MTCNN(options)
