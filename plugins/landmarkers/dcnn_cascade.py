"""A trainable five-point DCNN cascade after Sun, Wang & Tang, CVPR 2013.

Structure (the paper's, on a grey face square of 80 x 80 px made from the given box):

* **level 1** — three deep nets on the whole face resized to 39 x 39: ``F1`` (the whole
  square, all five points), ``EN1`` (its top 31 rows: eyes and nose) and ``NM1`` (its
  bottom 31 rows: nose and mouth); each point is the mean of the nets that predict it.
  Each net is conv 4x4 (20) - max-pool - conv 3x3 (40) - pool - conv 3x3 (60) - pool -
  conv 2x2 (80) - fc 120 - fc, with absolute-tanh activations as in the paper (the
  paper's locally shared weights are plain convolutions here);
* **levels 2 and 3** (``refine_levels``) — per point a shallow net (conv 4x4 (20) - pool -
  conv 3x3 (40) - pool - fc 60 - fc 2) on a 15 x 15 patch centred on the previous level's
  estimate, predicting the point's offset; the patch is 24 % of the square's side at
  level 2 and 14 % at level 3 (coarse to fine).  The paper uses two nets per point per
  level on slightly different patches and averages them; here one net per point.

Every net predicts a correction to the **mean shape** of its training faces (its last
layer starts at zero), so an untrained level-1 is the mean-shape baseline.

Training (:func:`train`) takes any :class:`~harness.types.LandmarkSet` whose scheme has the
common five points (``harness.metrics.landmarks.SCHEMES``: 68-point iBUG -> eye centres =
mean of 36-41 / 42-47, nose tip 30, mouth corners 48 / 54; WFLW 96, 97, 54, 76, 82; COFW
16, 17, 20, 22, 23; AFLW 7, 10, 13, 15, 17), draws jittered faces on the fly (random
horizontal flip with left/right swapped, box shift and scale, rotation) and trains level 1,
then each refinement level on patches around randomly displaced true points, each with
Adam on the mean squared error of the normalised coordinates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from harness.errors import ConfigError, DataError
from harness.metrics.landmarks import COMMON_FIVE, get_scheme

from facebench_plugins.landmarkers.options import DcnnCascadeOptions, DcnnTrainOptions

__all__ = ["DCNNCascade", "DcnnCascadeLandmarker", "build", "face_frame", "five_points", "train"]

CANVAS = 80          #: side of the grey face square the nets read, px
L1_SIZE = 39         #: level-1 input side (the paper's 39 x 39)
PART_ROWS = 31       #: EN1 / NM1 read the top / bottom 31 rows of the 39
PATCH = 15           #: refinement patch side, px
RADII = (0.12, 0.07)  #: refinement patch half-side per level, as a fraction of the square's side
NOISE = (0.035, 0.015)  #: std of the displacement of training patches per refinement level (same unit)
SOURCE = 160         #: side of the stored training crop, px (it covers SOURCE_SPAN squares)
SOURCE_SPAN = 1.6
FLIP = (1, 0, 2, 4, 3)  #: the five points after a horizontal flip
_COUNTS = torch.tensor([2.0, 2.0, 3.0, 2.0, 2.0])  # nets predicting each point at level 1


class AbsTanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x).abs()


def _head(features: int, hidden: int, out: int) -> list[nn.Module]:
    last = nn.Linear(hidden, out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return [nn.Flatten(), nn.Linear(features, hidden), AbsTanh(), last]


def deep_net(h: int, w: int, points: int) -> nn.Sequential:
    """Level-1 net (F1, EN1, NM1) on an ``h`` x ``w`` grey image -> 2 * ``points`` numbers."""
    body = [nn.Conv2d(1, 20, 4), AbsTanh(), nn.MaxPool2d(2), nn.Conv2d(20, 40, 3), AbsTanh(), nn.MaxPool2d(2),
            nn.Conv2d(40, 60, 3), AbsTanh(), nn.MaxPool2d(2), nn.Conv2d(60, 80, 2), AbsTanh()]
    with torch.no_grad():
        features = nn.Sequential(*body)(torch.zeros(1, 1, h, w)).numel()
    return nn.Sequential(*body, *_head(features, 120, 2 * points))


def shallow_net() -> nn.Sequential:
    """Refinement net on a 15 x 15 patch -> the point's (dx, dy) in patch sides."""
    body = [nn.Conv2d(1, 20, 4), AbsTanh(), nn.MaxPool2d(2), nn.Conv2d(20, 40, 3), AbsTanh(), nn.MaxPool2d(2)]
    with torch.no_grad():
        features = nn.Sequential(*body)(torch.zeros(1, 1, PATCH, PATCH)).numel()
    return nn.Sequential(*body, *_head(features, 60, 2))


def _standardise(x: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, x.dim()))
    return (x - x.mean(dim=dims, keepdim=True)) / (x.std(dim=dims, keepdim=True) + 1e-3)


def patches(canvas: torch.Tensor, points: torch.Tensor, radius: float) -> torch.Tensor:
    """(N, 5, 1, 15, 15) standardised patches of side 2 * ``radius`` around ``points`` (N, 5, 2).

    ``canvas`` is (N, 1, H, W); points and radius are fractions of its side (pixel i spans
    [i / W, (i + 1) / W]), so the grid is exact for ``grid_sample(align_corners=False)``.
    """
    n, k = points.shape[:2]
    steps = (torch.arange(PATCH, dtype=canvas.dtype) + 0.5) / PATCH * 2 * radius - radius
    gy, gx = torch.meshgrid(steps, steps, indexing="ij")
    offsets = torch.stack([gx, gy], dim=-1)  # (15, 15, 2) x, y
    grid = points[:, :, None, None, :] + offsets  # (N, 5, 15, 15, 2)
    grid = (2 * grid - 1).reshape(n, k * PATCH, PATCH, 2)
    out = F.grid_sample(canvas, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = out.reshape(n, k, 1, PATCH, PATCH)
    return _standardise(out.reshape(n * k, 1, PATCH, PATCH)).reshape(n, k, 1, PATCH, PATCH)


class DCNNCascade(nn.Module):
    """The three levels; coordinates are fractions of the face square's side (x, y)."""

    def __init__(self, refine_levels: int = 2) -> None:
        super().__init__()
        self.f1 = deep_net(L1_SIZE, L1_SIZE, 5)
        self.en1 = deep_net(PART_ROWS, L1_SIZE, 3)
        self.nm1 = deep_net(PART_ROWS, L1_SIZE, 3)
        self.refine = nn.ModuleList(nn.ModuleList(shallow_net() for _ in range(5)) for _ in range(refine_levels))
        self.register_buffer("mean_shape", torch.full((5, 2), 0.5))

    def level1(self, canvas: torch.Tensor) -> torch.Tensor:
        """(N, 5, 2) from (N, 1, 80, 80) standardised squares."""
        x = _standardise(F.interpolate(canvas, size=(L1_SIZE, L1_SIZE), mode="area"))
        delta = self.f1(x).view(-1, 5, 2)
        top = self.en1(x[:, :, :PART_ROWS]).view(-1, 3, 2)
        bottom = self.nm1(x[:, :, L1_SIZE - PART_ROWS:]).view(-1, 3, 2)
        delta = delta + F.pad(top, (0, 0, 0, 2)) + F.pad(bottom, (0, 0, 2, 0))
        return self.mean_shape + delta / _COUNTS.to(delta)[:, None]

    def refine_step(self, canvas: torch.Tensor, points: torch.Tensor, level: int) -> torch.Tensor:
        """``points`` moved by the refinement nets of ``level`` (0 = the paper's level 2)."""
        radius = RADII[level]
        p = patches(canvas, points.detach(), radius)
        offsets = torch.stack([net(p[:, k]) for k, net in enumerate(self.refine[level])], dim=1)
        return points.detach() + offsets * 2 * radius

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        points = self.level1(canvas)
        for level in range(len(self.refine)):
            points = self.refine_step(canvas, points, level)
        return points


# ----------------------------------------------------------------------------- geometry
def face_frame(box: Sequence[float], margin: float) -> tuple[np.ndarray, float]:
    """Centre (x, y) and side of the face square of ``box``: the mean of its width and height
    grown by ``margin`` on each side."""
    b = np.asarray(box, np.float64).reshape(4)
    side = float((b[2] - b[0] + b[3] - b[1]) / 2 * (1 + 2 * margin))
    if not np.isfinite(side) or side <= 1:
        raise DataError(f"face box {b.round(1).tolist()} is empty or not finite")
    return (b[:2] + b[2:]) / 2, side


def _affine(centre: np.ndarray, side: float, size: int, angle: float = 0.0, flip: bool = False) -> np.ndarray:
    """2 x 3 map of image px -> square px (size x size): the square of ``side`` around ``centre``."""
    s = size / side
    c, n = np.cos(angle) * s, np.sin(angle) * s
    m = np.array([[c, -n, 0.0], [n, c, 0.0]])
    m[:, 2] = size / 2 - 0.5 - m[:, :2] @ centre
    if flip:
        m[0] = -m[0]
        m[0, 2] += size - 1
    return m


def _warp(gray: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """``gray`` through ``m`` into size x size, halving the image first while ``m`` shrinks by > 2."""
    m = m.copy()
    while abs(np.linalg.det(m[:, :2])) ** 0.5 < 0.5 and min(gray.shape) > 8:
        gray = cv2.pyrDown(gray)
        m[:, :2] *= 2
    return cv2.warpAffine(gray, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def _to_fraction(px: np.ndarray, size: int) -> np.ndarray:
    return (px + 0.5) / size


def _from_fraction(frac: np.ndarray, size: int) -> np.ndarray:
    return frac * size - 0.5


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"landmarkers take (H, W, 3) uint8 RGB images, got {image.dtype} {image.shape}")
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


# ----------------------------------------------------------------------------- prediction
class DcnnCascadeLandmarker:
    """``predict(image, boxes) -> (N, 5, 2)`` in the ``five`` scheme with a trained checkpoint."""

    num_points = 5

    def __init__(self, options: DcnnCascadeOptions | None = None) -> None:
        self.options = options or DcnnCascadeOptions()
        if not self.options.weights:
            raise ConfigError("dcnn_cascade has no published weights: train them with `harness train-landmarker "
                              "dcnn_cascade --train aflw2000=PATH --out CKPT` and pass -o dcnn_cascade.weights=CKPT")
        path = Path(self.options.weights).expanduser()
        if not path.is_file():
            raise DataError(f"dcnn_cascade weights {path} do not exist (given as -o dcnn_cascade.weights)")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            self.config = dict(ckpt["config"])
            self.model = DCNNCascade(int(self.config["refine_levels"]))
            self.model.load_state_dict(ckpt["state_dict"])
        except (KeyError, RuntimeError, TypeError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: not a dcnn_cascade checkpoint written by `harness train-landmarker` "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
        self.meta = dict(ckpt.get("meta") or {})
        self.model.eval()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)

    def squares(self, image: np.ndarray, boxes: np.ndarray) -> tuple[torch.Tensor, list[np.ndarray]]:
        gray = _gray(image).astype(np.float32)
        canvases, maps = [], []
        for box in np.asarray(boxes, np.float64).reshape(-1, 4):
            centre, side = face_frame(box, float(self.config["margin"]))
            m = _affine(centre, side, CANVAS)
            canvases.append(_warp(gray, m, CANVAS))
            maps.append(m)
        x = torch.from_numpy(np.stack(canvases)[:, None]) if canvases else torch.zeros(0, 1, CANVAS, CANVAS)
        return _standardise(x) if len(x) else x, maps

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        x, maps = self.squares(image, boxes)
        if not maps:
            return np.zeros((0, 5, 2), np.float32)
        with torch.inference_mode():
            frac = self.model(x).numpy().astype(np.float64)
        out = [_apply(cv2.invertAffineTransform(m), _from_fraction(f, CANVAS)) for f, m in zip(frac, maps)]
        return np.stack(out).astype(np.float32)


def build(options: DcnnCascadeOptions | None = None) -> DcnnCascadeLandmarker:
    return DcnnCascadeLandmarker(options)


# ----------------------------------------------------------------------------- training
def five_points(points: np.ndarray, scheme: str) -> np.ndarray:
    """(..., 5, 2) common five (``five`` order) of an annotation in ``scheme``, or a DataError."""
    s = get_scheme(scheme)
    missing = [n for n in COMMON_FIVE if n not in s.points]
    if missing:
        raise DataError(f"annotations in the {scheme} scheme lack {', '.join(missing)}: dcnn_cascade trains on "
                        "eye centres, nose tip and mouth corners (68 / 98 / 29 / 19-point or five-point sets)")
    return s.semantic(np.asarray(points, np.float64), COMMON_FIVE)


class _Faces:
    """Training faces as grey crops of SOURCE px around each face square (points in crop px)."""

    def __init__(self, sets: Sequence[Any], margin: float, log: Callable[[str], None]) -> None:
        crops, pts, skipped = [], [], 0
        for data in sets:
            for sample in data.samples:
                five = five_points(sample.points, data.scheme)
                if not (np.isfinite(five).all() and np.isfinite(sample.box).all()):
                    skipped += 1
                    continue
                centre, side = face_frame(sample.box, margin)
                m = _affine(centre, side * SOURCE_SPAN, SOURCE)
                crops.append(_warp(_gray(data.loader(sample.key)).astype(np.float32), m, SOURCE))
                pts.append(_apply(m, five))
        if len(crops) < 2:
            raise DataError(f"dcnn_cascade needs at least 2 annotated faces to train on; found {len(crops)}")
        if skipped:
            log(f"left out {skipped} faces with missing points or boxes")
        self.crops, self.points = np.stack(crops), np.stack(pts)

    def __len__(self) -> int:
        return len(self.crops)

    def draw(self, idx: np.ndarray, rng: np.random.Generator, jitter: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Jittered squares (B, 1, 80, 80) and their five points (B, 5, 2) as fractions."""
        squares, targets = [], []
        side = SOURCE / SOURCE_SPAN
        for i in idx:
            shift = rng.uniform(-jitter, jitter, 2) * side
            scale = 1 + rng.uniform(-jitter, jitter)
            angle = np.deg2rad(rng.uniform(-100 * jitter, 100 * jitter))
            flip = bool(rng.integers(2))
            m = _affine(np.array([SOURCE / 2 - 0.5] * 2) + shift, side * scale, CANVAS, angle, flip)
            squares.append(_warp(self.crops[i], m, CANVAS))
            p = _to_fraction(_apply(m, self.points[i]), CANVAS)
            targets.append(p[list(FLIP)] if flip else p)
        return _standardise(torch.from_numpy(np.stack(squares)[:, None])), torch.from_numpy(np.stack(targets)).float()

    def plain(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every face without jitter (for the mean shape and the training error)."""
        side = SOURCE / SOURCE_SPAN
        m = _affine(np.array([SOURCE / 2 - 0.5] * 2), side, CANVAS)
        squares = np.stack([_warp(c, m, CANVAS) for c in self.crops])
        targets = _to_fraction(_apply(m, self.points), CANVAS)
        return _standardise(torch.from_numpy(squares[:, None])), torch.from_numpy(targets).float()


def _fit(params: list, loss_of: Callable[[np.ndarray], torch.Tensor], n: int, opts: DcnnTrainOptions,
         rng: np.random.Generator, label: str, log: Callable[[str], None]) -> dict:
    """Adam on ``loss_of(batch indices)`` for ``opts.steps`` steps (cosine learning rate)."""
    optim = torch.optim.Adam(params, lr=opts.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, opts.steps)
    losses, t0 = [], time.perf_counter()
    for step in range(opts.steps):
        loss = loss_of(rng.integers(0, n, opts.batch_size))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(opts.steps // 5, 1) == 0:
            log(f"  {label}: step {step + 1}/{opts.steps}, loss {np.mean(losses[-50:]):.5f}")
    return {"first_loss": float(np.mean(losses[:10])), "last_loss": float(np.mean(losses[-10:])),
            "seconds": round(time.perf_counter() - t0, 1)}


def _pupil_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Mean point error / distance between the true eye centres (five-point, inter-pupil NME)."""
    d = (true[:, 0] - true[:, 1]).norm(dim=-1)
    return float(((pred - true).norm(dim=-1).mean(dim=1) / d).mean())


def train(sets: Sequence[Any], out: str | Path, options: DcnnTrainOptions | None = None,
          log: Callable[[str], None] = print) -> dict:
    """Train the cascade on ``sets`` (LandmarkSets) and write the checkpoint ``out``.

    :returns: meta (faces, losses per level, five-point inter-pupil NME on the training faces
        of the mean shape and of the cascade), also stored in the checkpoint.
    """
    opts = options or DcnnTrainOptions()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    faces = _Faces(sets, opts.margin, log)
    model = DCNNCascade(opts.refine_levels)
    plain_x, plain_y = faces.plain()
    model.mean_shape.copy_(plain_y.mean(dim=0))
    log(f"training dcnn_cascade on {len(faces)} faces ({opts.steps} steps per level, batch {opts.batch_size})")

    def level1_loss(idx: np.ndarray) -> torch.Tensor:
        x, y = faces.draw(idx, rng, opts.jitter)
        return F.mse_loss(model.level1(x), y)

    level1 = [p for net in (model.f1, model.en1, model.nm1) for p in net.parameters()]
    history = {"level1": _fit(level1, level1_loss, len(faces), opts, rng, "level 1", log)}
    for level in range(opts.refine_levels):
        def refine_loss(idx: np.ndarray, level: int = level) -> torch.Tensor:
            x, y = faces.draw(idx, rng, opts.jitter)
            noise = torch.randn_like(y) * NOISE[level]
            start = y + noise.clamp(-0.8 * RADII[level], 0.8 * RADII[level])
            return F.mse_loss(model.refine_step(x, start, level), y)

        history[f"level{level + 2}"] = _fit(list(model.refine[level].parameters()), refine_loss, len(faces), opts,
                                            rng, f"level {level + 2}", log)
    model.eval()
    with torch.inference_mode():
        fitted = _pupil_error(model(plain_x), plain_y)
    baseline = _pupil_error(model.mean_shape.expand_as(plain_y), plain_y)
    meta = {"faces": len(faces), "schemes": sorted({d.scheme for d in sets}), "history": history,
            "train_nme_inter_pupil": round(fitted, 5), "mean_shape_nme_inter_pupil": round(baseline, 5),
            "options": {k: getattr(opts, k) for k in opts.__dataclass_fields__}}
    config = {"refine_levels": opts.refine_levels, "margin": opts.margin}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({"state_dict": model.state_dict(), "config": config, "meta": meta}, tmp)
    tmp.replace(out)
    log(f"five-point NME (inter-pupil) on the training faces: cascade {fitted:.4f}, mean shape {baseline:.4f}")
    return meta
