"""Shared torch code of the trainable inpainters: networks, the on-the-fly
meshed training batches, the training loop, batched restoration and
checkpoints.

Training pairs are made on the fly: each step draws clean faces, flips half
of them, draws a mesh for each with :func:`harness.formats.mesh.mesh_image`
(seeded from ``rng_seed`` and the step, so a run is reproducible) and crops a
random ``patch`` (or keeps the whole image).  Images are scaled to [0, 1];
sizes that are not a multiple of 8 are reflect-padded and cropped back.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.formats.mesh import mesh_image

from facebench_plugins.inpainters._opencv import check_images

__all__ = ["TorchInpainter", "UNet", "cosine_factor", "make_batch"]

_MULT = 8


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """Three stride-2 downsamplings; returns the features of every scale."""

    def __init__(self, width: int, cin: int = 3) -> None:
        super().__init__()
        w = width
        self.stages = nn.ModuleList([_block(cin, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class Decoder(nn.Module):
    """Upsampling path; with ``skips`` the encoder features are concatenated (U-Net)."""

    def __init__(self, width: int, skips: bool) -> None:
        super().__init__()
        w = width
        self.skips = skips
        chans = [8 * w, 4 * w, 2 * w, w]
        self.ups = nn.ModuleList()
        for cin, cout in zip(chans[:-1], chans[1:]):
            self.ups.append(_block(cin + (cout if skips else 0), cout))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        for i, up in enumerate(self.ups):
            skip = feats[-2 - i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], 1) if self.skips else x)
        return x


class UNet(nn.Module):
    """Encoder-decoder with a residual restoration head and an optional mask head.

    ``forward(x)`` (x in [0, 1]) returns ``(restored, mask_logits or None)``.
    With ``mask_guided`` the restored image is ``m * predicted + (1 - m) * x``
    with ``m = sigmoid(mask_logits)``: the multi-task net repaints only where
    it believes the mesh is.
    """

    def __init__(self, width: int = 32, skips: bool = True, mask_head: bool = False,
                 mask_guided: bool = False) -> None:
        super().__init__()
        self.encoder = Encoder(width)
        self.decoder = Decoder(width, skips)
        self.restore_head = nn.Conv2d(width, 3, 3, padding=1)
        self.mask_head = nn.Conv2d(width, 1, 3, padding=1) if mask_head else None
        self.mask_guided = mask_guided and mask_head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.decoder(self.encoder(x))
        pred = torch.clamp(x + self.restore_head(h), 0.0, 1.0)
        logits = self.mask_head(h) if self.mask_head is not None else None
        if self.mask_guided and logits is not None:
            m = torch.sigmoid(logits)
            pred = m * pred + (1 - m) * x
        return pred, logits


# ----------------------------------------------------------------- batches
def make_batch(clean: Sequence[np.ndarray], idx: np.ndarray, seed: int, patch: int) -> tuple[np.ndarray, ...]:
    """(meshed, clean, mask) uint8 arrays (N, H, W, 3/1) for ``clean[idx]``, meshed on the fly."""
    rng = np.random.default_rng(seed)
    ms, cs, ks = [], [], []
    for i in idx:
        img = np.asarray(clean[int(i)])
        if rng.random() < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
        meshed, mask = mesh_image(img, rng)
        if patch:
            h, w = img.shape[:2]
            if h < patch or w < patch:
                raise ValueError(f"training image {img.shape[:2]} is smaller than patch={patch}")
            y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
            img, meshed, mask = (a[y:y + patch, x:x + patch] for a in (img, meshed, mask))
        ms.append(meshed)
        cs.append(img)
        ks.append(mask)
    return np.stack(ms), np.stack(cs), np.stack(ks)[..., None]


def _to_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(0, 3, 1, 2).float() / 255.0


def _pad(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % _MULT, (-w) % _MULT
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x, h, w


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but torch sees no CUDA device; use device=auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class TorchInpainter:
    """Base of ``multitask_convnet`` and ``demeshnet`` (see their modules)."""

    trainable = True
    needs_mask = False
    arch = "base"

    def __init__(self, options: Any, make_net: Callable[[int], nn.Module]) -> None:
        ckpt = _read_checkpoint(options.weights) if options.weights else None
        width = ckpt.get("width") if ckpt is not None else None
        if isinstance(width, int) and width > 0 and width != options.width:
            import dataclasses  # the checkpoint carries its width: build the net it holds

            options = dataclasses.replace(options, width=width)
        self.options = options
        self.net = make_net(options.width)
        self.device = pick_device(options.device)
        self.net.to(self.device)
        self.trained_steps = 0
        #: lower-cased identity names of the training faces (recorded in checkpoints, so the
        #: meshface protocol can prove no evaluated pair's identity was seen); None: unknown.
        self.train_identities: frozenset[str] | None = None
        if ckpt is not None:
            self._load_state(ckpt, options.weights)

    mask_mode = "blind (the network sees only the meshed image)"

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def _forward(self, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
        check_images(images)
        self.net.eval()
        out: list[np.ndarray] = [None] * len(images)  # type: ignore[list-item]
        masks: list[np.ndarray | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            by_shape.setdefault(np.asarray(im).shape, []).append(i)
        for idxs in by_shape.values():
            for s in range(0, len(idxs), 32):
                part = idxs[s:s + 32]
                x, h, w = _pad(_to_tensor(np.stack([images[i] for i in part]), self.device))
                pred, logits = self.net(x)
                pred = (pred[..., :h, :w].clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
                prob = None if logits is None else torch.sigmoid(logits[..., :h, :w])[:, 0].cpu().numpy()
                for j, i in enumerate(part):
                    out[i] = pred[j]
                    masks[i] = None if prob is None else (prob[j] > 0.5).astype(np.uint8)
        return out, masks

    def restore(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """Restored copies of ``images`` (RGB uint8, same sizes).  Blind: ``masks`` is not used."""
        return self._forward(list(images))[0]

    def restore_with_masks(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
                           ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """(restored images, the mask head's masks or None) from one forward pass."""
        out, est = self._forward(list(images))
        return out, (est if est and est[0] is not None else None)

    # ------------------------------------------------------------- training
    def _loss(self, meshed: torch.Tensor, clean: torch.Tensor, mask: torch.Tensor,
              identity: Callable[[torch.Tensor], torch.Tensor] | None) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def _identity_fn(self, identity_embedder: Any) -> Callable | None:
        return None

    def fit(self, clean_images: Sequence[np.ndarray], rng_seed: int = 0, steps: int | None = None,
            progress: bool = True, identity_embedder: Any = None, time_budget: float | None = None,
            workers: int = 0) -> dict:
        """Train on ``clean_images`` (RGB uint8), meshed on the fly; returns the history."""
        images = list(clean_images)
        check_images(images)
        if len(images) < 2:
            raise ValueError(f"fit needs at least 2 clean images, got {len(images)}")
        o = self.options
        patch = o.patch
        if not patch:
            shapes = {np.asarray(im).shape for im in images}
            if len(shapes) > 1:
                raise ValueError(f"patch=0 trains on whole images, which must share one size; got {sorted(shapes)}")
        steps = int(steps or o.steps)
        torch.manual_seed(rng_seed)
        identity = self._identity_fn(identity_embedder)
        opt = torch.optim.Adam(self.net.parameters(), lr=o.lr)
        rng = np.random.default_rng(rng_seed)
        plan = [(rng.integers(0, len(images), o.batch_size), int(rng.integers(2**31))) for _ in range(steps)]
        hist: dict[str, list] = {"step": [], "loss": [], "lr": []}
        parts: dict[str, list] = {}
        pool = None
        if workers > 0:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(images, patch))
            batches = pool.imap(_worker_batch, plan, chunksize=4)
        else:
            batches = (make_batch(images, idx, seed, patch) for idx, seed in plan)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps, desc=f"fit ({self.arch})", unit="step", dynamic_ncols=True, leave=False)
        t0 = time.perf_counter()
        done = 0
        try:
            self.net.train()
            for step, (m, c, k) in enumerate(batches, 1):
                meshed, clean = _to_tensor(m, self.device), _to_tensor(c, self.device)
                mask = _to_tensor(k, self.device) * 255.0
                meshed, h, w = _pad(meshed)
                clean, _, _ = _pad(clean)
                mask, _, _ = _pad(mask)
                loss, terms = self._loss(meshed, clean, mask, identity)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{self.arch}: loss became {loss.item()} at step {step}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
                opt.step()
                for g in opt.param_groups:  # the lr of the next step
                    g["lr"] = o.lr * cosine_factor(step, steps, time.perf_counter() - t0, time_budget)
                done = step
                if step % 10 == 0 or step == 1 or step == steps:
                    hist["step"].append(step)
                    hist["loss"].append(float(loss.item()))
                    hist["lr"].append(float(opt.param_groups[0]["lr"]))
                    for kname, v in terms.items():
                        parts.setdefault(kname, []).append(float(v))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                if time_budget is not None and time.perf_counter() - t0 > time_budget:
                    break
        finally:
            if bar is not None:
                bar.close()
            if pool is not None:
                pool.terminate()
        self.net.eval()
        self.trained_steps += done
        wall = time.perf_counter() - t0
        return {**hist, "terms": parts, "steps": done, "wall_s": wall, "device": str(self.device),
                "img_per_s": done * o.batch_size / max(wall, 1e-9), "images": len(images)}

    # ---------------------------------------------------------- checkpoints
    def save(self, path: str | Path) -> Path:
        from harness.atomic import atomic_output

        path = Path(path)
        with atomic_output(path, "wb") as fh:
            torch.save({"arch": self.arch, "width": self.options.width, "steps": self.trained_steps,
                        "train_identities": (None if self.train_identities is None
                                             else sorted(self.train_identities)),
                        "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()}}, fh)
        return path

    def load(self, path: str | Path) -> "TorchInpainter":
        return self._load_state(_read_checkpoint(path), path)

    def _load_state(self, ckpt: dict, path: str | Path) -> "TorchInpainter":
        if ckpt.get("arch") != self.arch or ckpt.get("width") != self.options.width:
            raise ValueError(f"{path} holds a {ckpt.get('arch')} of width {ckpt.get('width')}, "
                             f"not a {self.arch} of width {self.options.width}")
        self.net.load_state_dict(ckpt["state_dict"])
        self.trained_steps = int(ckpt.get("steps", 0))
        ids = ckpt.get("train_identities")
        self.train_identities = None if ids is None else frozenset(str(i) for i in ids)
        self.net.to(self.device).eval()
        return self


def _read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"inpainter weights {path} not found (write them with fit + save)")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not an inpainter checkpoint written by save()")
    return ckpt


def cosine_factor(step: int, steps: int, elapsed: float = 0.0, time_budget: float | None = None) -> float:
    """Learning-rate factor: cosine from 1 to 0.05 over the training.

    Progress is the larger of ``step / steps`` and, with a time budget,
    ``elapsed / time_budget``, so a run cut short by its budget still ends
    with a decayed learning rate (budget-aware schedule, as in Li, Yumer &
    Ramanan, "Budgeted Training", ICLR 2020).
    """
    progress = step / max(steps, 1)
    if time_budget:
        progress = max(progress, elapsed / time_budget)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


_W: dict[str, Any] = {}


def _init_worker(images: list, patch: int) -> None:
    _W["images"], _W["patch"] = images, patch
    torch.set_num_threads(1)


def _worker_batch(item: tuple) -> tuple[np.ndarray, ...]:
    idx, seed = item
    return make_batch(_W["images"], idx, seed, _W["patch"])
