"""What the trainable torch liveness models share: crop batching, a seeded
training loop, scoring and checkpoints."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError, DataError, HarnessError

__all__ = ["TorchLiveness", "conv_bn_relu", "crops_to_tensor"]


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img
    import cv2

    interp = cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)


def crops_to_tensor(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """RGB uint8 crops -> (N, 3, size, size) float, (x - 127.5) / 128."""
    arr = []
    for i, im in enumerate(images):
        a = np.asarray(im)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise HarnessError(f"image {i}: expected an (H, W, 3) uint8 RGB face crop, got {a.shape} {a.dtype}")
        arr.append(_resize(a, size))
    x = torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).float()
    return (x - 127.5) / 128.0


def _labels(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if y.size != n:
        raise DataError(f"fit: {n} images but {y.size} labels")
    if not np.isin(y, (0, 1)).all():
        raise DataError("fit: labels must be 1 (bona fide) or 0 (attack)")
    y = y.astype(np.int64)
    if y.min() == y.max():
        raise DataError(f"fit: the training data holds only {'bona fide' if y[0] else 'attack'} presentations; "
                        "both classes are needed")
    return y


class TorchLiveness:
    """Base of ``binary_cnn`` and ``aux_depth``: subclasses give the network,
    the per-batch loss and the score of a forward pass."""

    kind = "torch_liveness"

    def __init__(self, options: Any) -> None:
        self.options = options
        if options.threads > 0:
            torch.set_num_threads(options.threads)
        if options.device not in ("cpu", "cuda") and not str(options.device).startswith("cuda:"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {options.device!r}")
        if str(options.device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device='cuda' but torch sees no CUDA device; use -o <model>.device=cpu")
        self.device = torch.device(options.device)
        torch.manual_seed(options.seed)
        self.net = self.make_net().to(self.device)
        self.fitted = False
        self.history: dict[str, list] = {}

    # ----------------------------------------------------------- subclass API
    def make_net(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch_loss(self, out: Any, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch_score(self, out: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -------------------------------------------------------------- training
    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        flip = torch.rand(n, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        pad = max(2, x.shape[-1] // 16)
        xp = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=g))
        return xp[:, :, dy:dy + x.shape[2], dx:dx + x.shape[3]]

    def fit(self, images: Sequence[np.ndarray], labels: Any, species: Any = None, progress: bool = True) -> dict:
        """Train on RGB face crops; labels 1 = bona fide, 0 = attack.

        :returns: the training history (loss per epoch, wall time, images/s).
        """
        o = self.options
        y = _labels(labels, len(images))
        x_all = crops_to_tensor(images, o.size)
        y_all = torch.from_numpy(y).float()
        self.pos_weight = torch.tensor(float((y == 0).sum()) / float((y == 1).sum()))
        g = torch.Generator().manual_seed(o.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        steps_per_epoch = max(1, int(np.ceil(len(y) / o.batch_size)))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o.epochs * steps_per_epoch)
        hist: dict[str, list] = {"epoch": [], "loss": [], "lr": []}
        t0 = time.perf_counter()
        epochs = range(o.epochs)
        if progress:
            from tqdm.auto import tqdm

            epochs = tqdm(epochs, desc=f"fit ({self.kind})", unit="epoch", leave=False)
        self.net.train()
        for epoch in epochs:
            perm = torch.randperm(len(y), generator=g)
            total, count = 0.0, 0
            for s in range(0, len(y), o.batch_size):
                idx = perm[s:s + o.batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                xb = x_all[idx]
                if o.augment:
                    xb = self._augment(xb, g)
                yb = y_all[idx].to(self.device)
                loss = self.batch_loss(self.net(xb.to(self.device)), yb)
                if not torch.isfinite(loss):
                    raise HarnessError(f"{self.kind}: training loss became {loss.item()} at epoch {epoch}; "
                                       "lower the learning rate (-o <model>.lr=...)")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.item()) * len(idx)
                count += len(idx)
            hist["epoch"].append(epoch + 1)
            hist["loss"].append(total / max(count, 1))
            hist["lr"].append(float(opt.param_groups[0]["lr"]))
        wall = time.perf_counter() - t0
        self.net.eval()
        self.fitted = True
        self.history = {**hist, "wall_s": round(wall, 2), "images": len(y),
                        "img_per_s": round(len(y) * o.epochs / max(wall, 1e-9), 1)}
        return self.history

    # --------------------------------------------------------------- scoring
    @torch.inference_mode()
    def score(self, images: Sequence[np.ndarray], batch_size: int = 128) -> np.ndarray:
        """Bona fide scores (N,) of RGB face crops (higher = bona fide)."""
        if not self.fitted:
            raise HarnessError(f"{self.kind}: score() before fit() or load(); train it or load a checkpoint")
        self.net.eval()
        out = []
        for s in range(0, len(images), batch_size):
            x = crops_to_tensor(images[s:s + batch_size], self.options.size).to(self.device)
            out.append(self.batch_score(self.net(x)).float().cpu().numpy())
        if not out:
            return np.zeros(0, np.float64)
        return np.concatenate(out).astype(np.float64)

    # ----------------------------------------------------------- checkpoints
    def save(self, path: str | Path) -> Path:
        from harness.results import atomic_write_bytes
        import io

        buf = io.BytesIO()
        torch.save({"kind": self.kind, "options": dataclasses.asdict(self.options),
                    "state_dict": self.net.state_dict(), "history": self.history}, buf)
        return atomic_write_bytes(Path(path), buf.getvalue())

    def load(self, path: str | Path) -> "TorchLiveness":
        p = Path(path)
        if not p.is_file():
            raise DataError(f"{self.kind} checkpoint {p} does not exist")
        try:
            ck = torch.load(p, map_location=self.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise DataError(f"{p}: not a {self.kind} checkpoint ({exc})") from None
        if not isinstance(ck, dict) or ck.get("kind") != self.kind:
            raise DataError(f"{p}: holds a {ck.get('kind') if isinstance(ck, dict) else type(ck).__name__!r} "
                            f"checkpoint, expected {self.kind!r}")
        mine = dataclasses.asdict(self.options)
        arch = [k for k in ("size", "width", "binary_head") if k in mine and ck["options"].get(k) != mine[k]]
        saved = ck["options"]
        if arch:
            raise DataError(f"{p}: saved with {', '.join(f'{k}={saved.get(k)}' for k in arch)}, "
                            f"but this {self.kind} has {', '.join(f'{k}={mine[k]}' for k in arch)}")
        self.net.load_state_dict(ck["state_dict"])
        self.net.eval()
        self.history = dict(ck.get("history") or {})
        self.fitted = True
        return self
