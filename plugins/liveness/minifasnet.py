"""``minifasnet``: MiniFASNetV2 + MiniFASNetV1SE with the released weights of
minivision-ai/Silent-Face-Anti-Spoofing (Apache-2.0), written here in torch.

Architecture (read from the reference code, re-implemented): a pruned
MobileFaceNet — a 3x3 stride-2 stem, a depthwise conv, then inverted
bottlenecks (1x1 expand + PReLU, 3x3 depthwise + PReLU, 1x1 linear project)
in three down-sampling transitions and three residual stages (4, 6 and 2
blocks) whose expansion widths are the pruned ``keep`` widths of each
variant; the SE variant puts a squeeze-excitation module (reduction 4, conv
+ BatchNorm on both sides) on the last block of each residual stage.  A 1x1
conv to 512 channels, a 5x5 depthwise "global" conv (80x80 input), a linear
layer to 128, BatchNorm1d, dropout and a 3-way classifier (0 = print attack,
1 = real, 2 = replay attack) close it.

Pre-processing as upstream trained: the face box (x, y, w, h) is scaled by
2.7 (V2) or 4.0 (V1SE) about its centre (the scale is capped so the box fits
the image), shifted back inside the image where it overflows, cut out and
resized to 80x80; the patch is **BGR**, float in 0..255, with no mean / std.
The score is the two models' softmax probability of class 1, averaged.

Any aspect ratio is accepted (the upstream demo rejects images that are not
3:4); large images are shrunk for detection only, the patches are cut from
the full-resolution image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.errors import DataError, HarnessError
from harness.weights import locate_weights

from facebench_plugins.liveness import MINIFASNET_WEIGHTS, MinifasnetOptions

__all__ = ["MiniFASNet", "Minifasnet", "build", "crop_box", "minifasnet_v1se", "minifasnet_v2", "patch"]

#: box scale per model (from the weight file names: 2.7_80x80, 4_0_0_80x80)
SCALES = {"v2": 2.7, "v1se": 4.0}
INPUT = 80


# ------------------------------------------------------------------ layers
class ConvUnit(nn.Module):
    """conv (no bias) -> BatchNorm -> PReLU (or no activation when ``act`` is False)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2 if k == 3 else 0,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = channels // reduction
        self.fc1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = torch.relu(self.bn1(self.fc1(s)))
        return x * torch.sigmoid(self.bn2(self.fc2(s)))


class Bottleneck(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear project [+ SE] [+ identity]."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, residual: bool, se: bool = False) -> None:
        super().__init__()
        self.conv = ConvUnit(cin, mid, 1)
        self.conv_dw = ConvUnit(mid, mid, 3, stride=stride, groups=mid)
        self.project = ConvUnit(mid, cout, 1, act=False)
        self.se_module = SqueezeExcite(cout, 4) if se else None
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        if self.residual:
            if self.se_module is not None:
                y = self.se_module(y)
            return x + y
        return y


class Stage(nn.Module):
    def __init__(self, channels: int, mids: Sequence[int], se_last: bool) -> None:
        super().__init__()
        self.model = nn.Sequential(*[
            Bottleneck(channels, m, channels, 1, residual=True, se=se_last and i == len(mids) - 1)
            for i, m in enumerate(mids)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MiniFASNet(nn.Module):
    """MiniFASNet for 80x80 input: ``widths`` are the pruned expansion widths
    (``t23``, ``s3`` x4, ``t34``, ``s4`` x6, ``t45``, ``s5`` x2)."""

    def __init__(self, widths: dict[str, Sequence[int]], se: bool, num_classes: int = 3,
                 embedding: int = 128, drop: float = 0.0) -> None:
        super().__init__()
        self.conv1 = ConvUnit(3, 32, 3, stride=2)
        self.conv2_dw = ConvUnit(32, 32, 3, groups=32)
        self.conv_23 = Bottleneck(32, widths["t23"][0], 64, 2, residual=False)
        self.conv_3 = Stage(64, widths["s3"], se)
        self.conv_34 = Bottleneck(64, widths["t34"][0], 128, 2, residual=False)
        self.conv_4 = Stage(128, widths["s4"], se)
        self.conv_45 = Bottleneck(128, widths["t45"][0], 128, 2, residual=False)
        self.conv_5 = Stage(128, widths["s5"], se)
        self.conv_6_sep = ConvUnit(128, 512, 1)
        k = (INPUT + 15) // 16  # 5 for 80x80: the map is 5x5 here
        self.conv_6_dw = nn.Module()
        self.conv_6_dw.conv = nn.Conv2d(512, 512, k, groups=512, bias=False)
        self.conv_6_dw.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, embedding, bias=False)
        self.bn = nn.BatchNorm1d(embedding)
        self.drop = nn.Dropout(drop)
        self.prob = nn.Linear(embedding, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep):
            x = stage(x)
        x = self.conv_6_dw.bn(self.conv_6_dw.conv(x)).flatten(1)
        return self.prob(self.drop(self.bn(self.linear(x))))


def minifasnet_v2() -> MiniFASNet:
    return MiniFASNet({"t23": [103], "s3": [13, 13, 13, 13], "t34": [231], "s4": [231, 52, 26, 77, 26, 26],
                       "t45": [308], "s5": [26, 26]}, se=False, drop=0.2)


def minifasnet_v1se() -> MiniFASNet:
    return MiniFASNet({"t23": [103], "s3": [13, 26, 13, 52], "t34": [231], "s4": [154, 52, 26, 52, 26, 26],
                       "t45": [308], "s5": [26, 26]}, se=True, drop=0.75)


_NETS = {"v2": minifasnet_v2, "v1se": minifasnet_v1se}


def load_net(name: str, weights_dir: str | None = None) -> tuple[MiniFASNet, Path]:
    """Build ``name`` (``v2`` / ``v1se``) and load its verified weights strictly."""
    path = locate_weights(MINIFASNET_WEIGHTS[name], weights_dir or None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = _NETS[name]()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: does not match the MiniFASNet {name} architecture: {exc}") from None
    return net.eval(), path


# -------------------------------------------------------------- cropping
def crop_box(box_xyxy: Sequence[float], image_shape: tuple[int, ...], scale: float) -> tuple[int, int, int, int]:
    """The upstream crop rule: (x1, y1, x2, y2) inclusive pixel corners of the
    patch for a face box scaled by ``scale`` (capped to fit), shifted inside the image."""
    src_h, src_w = int(image_shape[0]), int(image_shape[1])
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    x, y = int(x1), int(y1)
    box_w, box_h = max(int(x2 - x1 + 1), 1), max(int(y2 - y1 + 1), 1)
    scale = min((src_h - 1) / box_h, (src_w - 1) / box_w, scale)
    new_w, new_h = box_w * scale, box_h * scale
    cx, cy = box_w / 2 + x, box_h / 2 + y
    lx, ly, rx, ry = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if lx < 0:
        rx -= lx
        lx = 0
    if ly < 0:
        ry -= ly
        ly = 0
    if rx > src_w - 1:
        lx -= rx - src_w + 1
        rx = src_w - 1
    if ry > src_h - 1:
        ly -= ry - src_h + 1
        ry = src_h - 1
    return int(lx), int(ly), int(rx), int(ry)


def patch(image_rgb: np.ndarray, box_xyxy: Sequence[float], scale: float) -> np.ndarray:
    """The 80x80 BGR uint8 patch a MiniFASNet model sees."""
    import cv2

    x1, y1, x2, y2 = crop_box(box_xyxy, image_rgb.shape, scale)
    cut = image_rgb[y1:y2 + 1, x1:x2 + 1, ::-1]
    return cv2.resize(np.ascontiguousarray(cut), (INPUT, INPUT))


def _check_image(image: Any, i: int = 0) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise HarnessError(f"image {i}: expected an (H, W, 3) uint8 RGB image, got {a.shape} {a.dtype}")
    return a


# ------------------------------------------------------------------ model
class Minifasnet:
    """Both models; ``score(images)`` on full RGB photos (detects the face) or
    ``score_faces(image, boxes)`` with known boxes (x1, y1, x2, y2)."""

    kind = "minifasnet"

    def __init__(self, options: MinifasnetOptions | None = None, registry: Any = None) -> None:
        self.options = options or MinifasnetOptions()
        if self.options.threads > 0:
            torch.set_num_threads(self.options.threads)
        names = [m.strip() for m in self.options.models.split(",") if m.strip()]
        self.nets: dict[str, MiniFASNet] = {}
        self.weights: dict[str, str] = {}
        for name in names:
            self.nets[name], path = load_net(name, self.options.weights_dir or None)
            self.weights[name] = str(path)
        self._registry = registry
        self._detector: Any = None
        self.last_no_face = 0

    # ------------------------------------------------------------ detection
    @property
    def detector(self) -> Any:
        if self._detector is None:
            reg = self._registry
            if reg is None:
                from harness.registry import get_registry

                reg = get_registry()
            self._detector = reg.build("detector", self.options.detector)
        return self._detector

    def find_face(self, image: np.ndarray) -> np.ndarray | None:
        """The chosen face box (x1, y1, x2, y2) in ``image``'s pixels, or None."""
        import cv2

        from harness.align import choose_face

        h, w = image.shape[:2]
        side = self.options.detect_max_side
        f = min(1.0, side / max(h, w)) if side else 1.0
        small = image if f == 1.0 else cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                                                   interpolation=cv2.INTER_AREA)
        det = self.detector.detect(np.ascontiguousarray(small))
        k = choose_face(det, small.shape, policy=self.options.face_policy)
        if k is None:
            return None
        return np.asarray(det.boxes[k], np.float64) / f

    # -------------------------------------------------------------- scoring
    @torch.inference_mode()
    def probabilities(self, image: np.ndarray, boxes: Any) -> np.ndarray:
        """(B, 3) class probabilities averaged over the models for each box."""
        img = _check_image(image)
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        total = np.zeros((len(b), 3))
        for name, net in self.nets.items():
            x = np.stack([patch(img, box, SCALES[name]) for box in b]).astype(np.float32)
            t = torch.from_numpy(x).permute(0, 3, 1, 2)
            total += torch.softmax(net(t), dim=1).numpy()
        return total / len(self.nets)

    def score_faces(self, image: np.ndarray, boxes: Any) -> np.ndarray:
        """P(real) (B,) for the faces at ``boxes`` (x1, y1, x2, y2) in ``image``."""
        return self.probabilities(image, boxes)[:, 1].astype(np.float64)

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """P(real) (N,) of full RGB photos; the face is found with the detector.

        An image with no face is scored on a centred box of half its shorter
        side (counted in ``last_no_face``).
        """
        out = np.zeros(len(images), np.float64)
        self.last_no_face = 0
        for i, im in enumerate(images):
            img = _check_image(im, i)
            box = self.find_face(img)
            if box is None:
                self.last_no_face += 1
                h, w = img.shape[:2]
                s = min(h, w) / 4
                box = np.array([w / 2 - s, h / 2 - s, w / 2 + s, h / 2 + s])
            out[i] = self.score_faces(img, box[None])[0]
        return out


def build(options: MinifasnetOptions | None = None, registry: Any = None, **_: Any) -> Minifasnet:
    return Minifasnet(options, registry)
