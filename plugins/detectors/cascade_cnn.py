"""Li et al. 2015's CNN cascade: 12-, 24-, 48-net detectors, each followed by a
calibration net, in PyTorch.  No public weights exist: :func:`train_cascade`
trains all six nets from WIDER-style annotations, and results depend on the
training data and steps given.

Detection (as in the paper): the 12-net slides over an image pyramid (fully
convolutional, stride 2; the first scale maps ``min_face`` to 12 px), the
12-calibration net adjusts each window, NMS; the surviving windows are cut
and resized to 24 × 24 for the 24-net and 24-calibration net, NMS; then
48 × 48 for the 48-net, a global NMS and the 48-calibration net.

Calibration: 45 patterns, scale s ∈ {0.83, 0.91, 1.0, 1.10, 1.21}, shifts
x, y ∈ {−0.17, 0, 0.17}; a window (x, y, w, h) is corrected by the mean of
the patterns scoring above 0.1: (x − x_n·w/s_n, y − y_n·h/s_n, w/s_n, h/s_n).

Simplifications, stated: the 24- and 48-nets do not concatenate the
smaller nets' features (the paper's multi-resolution variant); the 48-net
uses no local response normalisation.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.errors import DataError
from harness.types import Detections

from facebench_plugins.detectors import CascadeCnnOptions
from facebench_plugins.detectors._common import check_image
from facebench_plugins.detectors.mtcnn import _crop_bounds, _Integral, nms

__all__ = ["CALIBRATION", "CascadeCNN", "build", "load_wider_labels", "mine_samples", "train_cascade"]

CALIBRATION = np.array(
    list(itertools.product((0.83, 0.91, 1.0, 1.10, 1.21), (-0.17, 0.0, 0.17), (-0.17, 0.0, 0.17))),
    dtype=np.float32,
)  # (45, 3): s, x, y


def _net(size: int, outputs: int) -> nn.Sequential:
    """The detector (outputs=2) or calibration (outputs=45) net for ``size`` × ``size`` inputs."""
    if size == 12:  # fully convolutional so it can slide over the pyramid
        width = 16
        return nn.Sequential(
            nn.Conv2d(3, width, 3), nn.MaxPool2d(3, 2), nn.ReLU(),
            nn.Conv2d(width, 16 if outputs == 2 else 128, 4), nn.ReLU(),
            nn.Conv2d(16 if outputs == 2 else 128, outputs, 1),
        )
    if size == 24:
        ch, fc = (64, 128) if outputs == 2 else (32, 64)
        return nn.Sequential(
            nn.Conv2d(3, ch, 5), nn.MaxPool2d(3, 2), nn.ReLU(), nn.Flatten(),
            nn.Linear(ch * 9 * 9, fc), nn.ReLU(), nn.Linear(fc, outputs),
        )
    if size == 48:
        return nn.Sequential(
            nn.Conv2d(3, 64, 5), nn.MaxPool2d(3, 2), nn.ReLU(),
            nn.Conv2d(64, 64, 5), nn.MaxPool2d(3, 2), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * 8 * 8, 256), nn.ReLU(), nn.Linear(256, outputs),
        )
    raise ValueError(f"no cascade net for size {size}")


class CascadeNets(nn.Module):
    """The six nets, keyed ``net12``, ``cal12``, ``net24``, ``cal24``, ``net48``, ``cal48``."""

    def __init__(self) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({
            f"{kind}{size}": _net(size, 2 if kind == "net" else len(CALIBRATION))
            for size in (12, 24, 48) for kind in ("net", "cal")
        })

    def __getitem__(self, key: str) -> nn.Module:
        return self.nets[key]


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) / 128.0


# ------------------------------------------------------------------ detector
class CascadeCNN:
    has_landmarks = False

    def __init__(self, options: CascadeCnnOptions | None = None, nets: CascadeNets | None = None) -> None:
        self.options = options or CascadeCnnOptions()
        if self.options.threads > 0:
            torch.set_num_threads(self.options.threads)
        if nets is None:
            if not self.options.weights:
                raise DataError(
                    "cascade_cnn has no public weights: train them with "
                    "`harness train-detector cascade_cnn --data wider=PATH -o OUT` (or "
                    "facebench_plugins.detectors.cascade_cnn.train_cascade) and pass "
                    "-o cascade_cnn.weights=OUT"
                )
            path = Path(self.options.weights).expanduser()
            if not path.is_file():
                raise DataError(f"cascade_cnn weights {path} do not exist (given as an option)")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            nets = CascadeNets()
            nets.load_state_dict(ckpt["state_dict"])
        self.nets = nets.eval()

    def detect(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """One image at a time (the pyramid and crops are per image)."""
        return [self._detect(check_image(im)) for im in images]

    @staticmethod
    def _calibrate(boxes: np.ndarray, logits: torch.Tensor) -> np.ndarray:
        prob = torch.softmax(logits, dim=1).numpy()
        use = prob > 0.1
        use[np.arange(len(use)), prob.argmax(1)] = True
        weight = use / use.sum(1, keepdims=True)
        s, x, y = (weight @ CALIBRATION).T
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        x1 = boxes[:, 0] - x * w / s
        y1 = boxes[:, 1] - y * h / s
        return np.stack([x1, y1, x1 + w / s, y1 + h / s], axis=1).astype(np.float32)

    @torch.inference_mode()
    def _detect(self, image: np.ndarray) -> Detections:
        o = self.options
        h, w = image.shape[:2]
        batch = torch.from_numpy(image[None]).permute(0, 3, 1, 2).float()
        boxes_all, scores_all = [], []
        scale = 12.0 / o.min_face
        while min(h, w) * scale >= 12:
            level = F.interpolate(batch, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            prob = torch.softmax(self.nets["net12"](_normalise(level)), dim=1)[0, 1]
            ys, xs = torch.nonzero(prob > o.thresholds[0], as_tuple=True)
            if len(ys):
                b = torch.stack([xs * 2, ys * 2, xs * 2 + 12, ys * 2 + 12], 1).float() / scale
                boxes_all.append(b.numpy())
                scores_all.append(prob[ys, xs].numpy())
            scale *= o.factor
        if not boxes_all:
            return Detections.empty(with_landmarks=False)
        boxes = np.concatenate(boxes_all)
        scores = np.concatenate(scores_all)
        integral = _Integral(batch)

        def crops(bx, size):
            y0, y1, x0, x1 = _crop_bounds(bx, w, h)
            ok = (y1 > y0) & (x1 > x0)
            return ok, (integral.crops(np.zeros(int(ok.sum()), np.int64), y0[ok], y1[ok], x0[ok], x1[ok], size)
                        if ok.any() else None)

        for size, thr, iou in ((12, None, o.nms[0]), (24, o.thresholds[1], o.nms[1]), (48, o.thresholds[2], None)):
            ok, patch = crops(boxes, size)
            boxes, scores = boxes[ok], scores[ok]
            if patch is None:
                return Detections.empty(with_landmarks=False)
            x = _normalise(patch)
            if thr is not None:
                scores = torch.softmax(self.nets[f"net{size}"](x), dim=1)[:, 1].numpy()
                keep = scores > thr
                boxes, scores, x = boxes[keep], scores[keep], x[torch.from_numpy(keep)]
                if len(boxes) == 0:
                    return Detections.empty(with_landmarks=False)
            if size == 48:  # the paper: global NMS, then the last calibration
                keep = nms(boxes, scores, np.zeros(len(boxes), np.int64), o.nms[2])
                boxes, scores, x = boxes[keep], scores[keep], x[torch.from_numpy(keep)]
            cal = self.nets[f"cal{size}"](x)
            boxes = self._calibrate(boxes, cal.reshape(len(boxes), -1))
            if iou is not None:
                keep = nms(boxes, scores, np.zeros(len(boxes), np.int64), iou)
                boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")
        return Detections(boxes[order], scores[order], None)


def build(options: CascadeCnnOptions | None = None) -> CascadeCNN:
    return CascadeCNN(options)


# ------------------------------------------------------------------ training
def load_wider_labels(labels_txt: str | Path) -> dict[str, tuple[int, int, np.ndarray]]:
    """``labelv2``-style labels: ``# rel/path.jpg W H`` then ``x1 y1 x2 y2 [...]`` lines.

    :returns: basename (no extension) -> (W, H, boxes (N, 4) float32).
    """
    out: dict[str, tuple[int, int, np.ndarray]] = {}
    current, rows = None, []
    for line in Path(labels_txt).read_text().splitlines():
        if line.startswith("#"):
            if current is not None:
                out[current[0]] = (current[1], current[2], np.asarray(rows, np.float32).reshape(-1, 4))
            _, rel, w, h = line.split()[:4]
            current, rows = (Path(rel).stem, int(w), int(h)), []
        elif line.strip():
            rows.append([float(v) for v in line.split()[:4]])
    if current is not None:
        out[current[0]] = (current[1], current[2], np.asarray(rows, np.float32).reshape(-1, 4))
    return out


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def mine_samples(images_dir: str | Path, labels_txt: str | Path, *, min_face: int = 24,
                 negatives_per_image: int = 30, seed: int = 0, limit: int | None = None):
    """Cut 48 × 48 training crops from annotated images.

    Images are found by basename in ``images_dir``; when an image's size
    differs from the labelled W × H (e.g. WIDER stretched to 416 × 416) the
    boxes are scaled to it.  Positives: square ground-truth faces at least
    ``min_face`` px; negatives: random squares with IoU < 0.3 with every face;
    calibration samples: each positive shifted/scaled by a random pattern n
    (label n: the pattern that undoes it).

    :returns: dict of uint8 arrays ``pos``, ``neg``, ``cal`` (N, 48, 48, 3)
        and int64 ``cal_label``.
    """
    import cv2

    rng = random.Random(seed)
    labels = load_wider_labels(labels_txt)
    files = sorted(Path(images_dir).glob("*.jpg"))[:limit]
    if not files:
        raise DataError(f"no .jpg images in {images_dir}")
    pos, neg, cal, cal_label = [], [], [], []

    def cut(img, box):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        H, W = img.shape[:2]
        if x1 < 0 or y1 < 0 or x2 > W or y2 > H or x2 - x1 < 4 or y2 - y1 < 4:
            return None
        return cv2.resize(img[y1:y2, x1:x2], (48, 48), interpolation=cv2.INTER_AREA)

    for f in files:
        if f.stem not in labels:
            continue
        W0, H0, boxes = labels[f.stem]
        img = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        H, W = img.shape[:2]
        boxes = boxes * np.array([W / W0, H / H0, W / W0, H / H0], np.float32)
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        squares = np.concatenate([centres - sides[:, None] / 2, centres + sides[:, None] / 2], 1)
        for sq, side in zip(squares, sides):
            if side < min_face:
                continue
            c = cut(img, sq)
            if c is not None:
                pos.append(c)
            n = rng.randrange(len(CALIBRATION))
            s, dx, dy = CALIBRATION[n]
            # the crop the calibration net sees is the face moved by the inverse of pattern n
            w = side * s
            x1 = sq[0] + dx * w
            y1 = sq[1] + dy * w
            c = cut(img, (x1, y1, x1 + w, y1 + w))
            if c is not None:
                cal.append(c)
                cal_label.append(n)
        for _ in range(negatives_per_image):
            side = rng.uniform(min_face, max(min_face + 1, min(H, W) / 2))
            x1, y1 = rng.uniform(0, W - side), rng.uniform(0, H - side)
            box = np.array([x1, y1, x1 + side, y1 + side], np.float32)
            if len(boxes) and _iou_one(box, boxes).max() >= 0.3:
                continue
            c = cut(img, box)
            if c is not None:
                neg.append(c)
    empty = np.zeros((0, 48, 48, 3), np.uint8)
    return {
        "pos": np.stack(pos) if pos else empty, "neg": np.stack(neg) if neg else empty,
        "cal": np.stack(cal) if cal else empty, "cal_label": np.asarray(cal_label, np.int64),
    }


def _to_tensor(crops: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    if size != 48:
        x = F.interpolate(x, size=(size, size), mode="area")
    return _normalise(x)


def train_cascade(wider_images_dir: str | Path, labels_txt: str | Path, out_path: str | Path,
                  steps: int = 2000, *, batch_size: int = 64, lr: float = 1e-3, min_face: int = 24,
                  seed: int = 0, limit: int | None = None, log=None) -> dict:
    """Train the six nets on crops mined from annotated images; save a checkpoint.

    :param wider_images_dir: folder of images (found by basename).
    :param labels_txt: labelv2-style annotations (``# path W H`` + box lines).
    :param out_path: where the checkpoint goes (``torch.save`` of
        ``{"state_dict", "meta"}``); pass it as ``-o cascade_cnn.weights=``.
    :param steps: Adam steps per net.
    :returns: meta: sample counts, first/last losses and held-out accuracies per net.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = mine_samples(wider_images_dir, labels_txt, min_face=min_face, seed=seed, limit=limit)
    if len(data["pos"]) < 8 or len(data["neg"]) < 8:
        raise DataError(f"too few training crops mined ({len(data['pos'])} faces, {len(data['neg'])} "
                        "non-faces): give more images or a smaller min_face")
    nets = CascadeNets()
    meta: dict = {"samples": {k: int(len(v)) for k, v in data.items() if k != "cal_label"},
                  "steps": steps, "data": str(wider_images_dir), "labels": str(labels_txt)}

    def split(n):
        idx = rng.permutation(n)
        cut = max(1, n // 10)
        return idx[cut:], idx[:cut]

    det_x = np.concatenate([data["pos"], data["neg"]])
    det_y = np.concatenate([np.ones(len(data["pos"])), np.zeros(len(data["neg"]))]).astype(np.int64)
    det_tr, det_te = split(len(det_x))
    cal_tr, cal_te = split(len(data["cal"])) if len(data["cal"]) >= 10 else (None, None)
    weight = torch.tensor([1.0, len(data["neg"]) / max(1, len(data["pos"]))])
    for size in (12, 24, 48):
        for kind in ("net", "cal"):
            if kind == "cal" and cal_tr is None:
                continue
            x_all, y_all = (det_x, det_y) if kind == "net" else (data["cal"], data["cal_label"])
            tr, te = (det_tr, det_te) if kind == "net" else (cal_tr, cal_te)
            net = nets[f"{kind}{size}"].train()
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            losses = []
            for step in range(steps):
                b = rng.choice(tr, size=min(batch_size, len(tr)), replace=False)
                x = _to_tensor(x_all[b], size)
                if rng.random() < 0.5:
                    x = x.flip(3) if kind == "net" else x  # mirroring would swap x-shift labels
                logits = net(x).reshape(len(b), -1)
                loss = F.cross_entropy(logits, torch.from_numpy(y_all[b]),
                                       weight=weight if kind == "net" else None)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            net.eval()
            with torch.no_grad():
                pred = net(_to_tensor(x_all[te], size)).reshape(len(te), -1).argmax(1).numpy()
            k = max(1, min(20, steps // 5))
            meta[f"{kind}{size}"] = {
                "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
                "heldout_accuracy": float((pred == y_all[te]).mean()),
            }
            if log:
                log(f"{kind}{size}: {meta[f'{kind}{size}']}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": nets.state_dict(), "meta": meta}, out_path)
    return meta
