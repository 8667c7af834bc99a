"""The PyTorch engine: training loop, checkpoints, and batched embedding.

The recognition task drives it through :class:`TorchEngine`::

    engine = build(options)
    engine.seed_everything(seed)
    outcome = engine.train(model, loss_fn, train_set, backbone_spec=spec,
                           settings=training, workdir=run_dir, seed=seed)
    feats = engine.embed(outcome.model, images, backbone_spec=spec, flip="concat")

Training is exactly resumable: the order of the data is a pure function of
``(seed, epoch)`` (see :mod:`._data`) and a checkpoint holds the model, the
loss (class weights, centres), optimizer, schedule, step, epoch, position
within the epoch, RNG states and history.  A run killed at any point and
started again with ``resume=True`` continues from ``workdir/checkpoints/last.pt``
and ends with the same weights as a run that was never interrupted.

Training stops after ``epochs`` (or ``max_steps``); a ``time_budget``, only
when one is given, stops it after the current step and says so on the
console in one line.  The loop is built from the parts in :mod:`._trainer`:
precision setup, the ranks, a checkpointer (restore-or-init and saves), a
step function and the trainer that runs the epochs.

Distributed data parallel
-------------------------
Under ``torchrun`` (``harness run --nproc-per-node N``; the runner
initialises the process group: NCCL on CUDA, gloo on CPU) ``train`` wraps
the backbone — and a loss with its own parameters — in
``DistributedDataParallel``.  Rank ``r`` of ``world`` takes every
``world``-th item of each global batch of the same ``(seed, epoch)`` plan,
so ``batch_size`` stays the *global* batch and the gradients equal those of
one process on the whole batch (for models whose batch statistics and
dropout do not couple the samples: BatchNorm statistics and dropout masks
are per rank, as usual with DDP).  A sharded loss (``sharded = True``, e.g.
``partial_fc``) is not wrapped: each rank updates its own class centres and
gradient clipping all-reduces their squared norms.

Rank 0 alone writes checkpoints (a sharded loss's centres and their
optimizer state are gathered to it); on resume rank 0 reads the checkpoint
and broadcasts it.  Every step the ranks agree on success (one tiny
all-reduce that also averages the loss), so an error on one rank — bad
data, a diverged loss — stops all of them at the same step with a clear
message instead of leaving the others hanging in a collective.  The DDP
wrappers are deleted before ``train`` returns (before any
``destroy_process_group``; gloo otherwise aborts at exit now and then).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError

from . import TorchEngineOptions
from ._checkpoint import (
    StateMatch,
    atomic_save,
    load_matching,
    match_state_dict,
    read_state_dict,
)
from ._data import ImageTransform, embed_source
from ._trainer import LRSchedule, Precision, Ranks, TrainOutcome, Trainer, _input_size, _unwrap, param_groups

__all__ = ["LRSchedule", "TorchEngine", "TrainOutcome", "build", "param_groups"]


def build(options: TorchEngineOptions | None = None) -> "TorchEngine":
    """Factory named by the ``torch`` engine spec."""
    return TorchEngine(options or TorchEngineOptions())


# ----------------------------------------------------------------- engine
class TorchEngine:
    """Trains a backbone with a loss, and embeds images with a backbone."""

    name = "torch"

    def __init__(self, options: TorchEngineOptions | None = None) -> None:
        self.options = options or TorchEngineOptions()
        if self.options.threads:
            torch.set_num_threads(self.options.threads)

    # --------------------------------------------------------------- basics
    def resolve_device(self, device: str = "auto") -> torch.device:
        """``"auto"``: CUDA when available, else the CPU."""
        if device in (None, "", "auto"):
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ConfigError(f"device {device!r} is not a torch device ('auto', 'cpu', 'cuda', 'cuda:1')") from exc
        if dev.type == "meta":
            raise ConfigError(f"device {device!r} holds no data and cannot train or embed; use 'auto', 'cpu' or 'cuda'")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device; use 'auto' or 'cpu'")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r} asked for, but torch sees {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); use one of them, 'auto' or 'cpu'"
            )
        return dev

    def precision_label(self, device: str = "auto") -> str:
        """What :meth:`embed` computes in on ``device`` (the manifest's ``precision``)."""
        p = Precision.for_device(self.resolve_device(device), self.options)
        if p.amp_dtype is None:
            return "float32"
        return f"{str(p.amp_dtype).removeprefix('torch.')} autocast" + (" + channels_last" if p.channels_last else "")

    def check_settings(self, settings, *, training: bool = True) -> None:
        """Check what a run will ask of the engine before any work starts.

        The device exists and takes a tensor; when ``training``, the ``init``
        weights are a readable checkpoint holding network weights (whether
        they fit the model is checked when it is built).

        :raises ConfigError: the device is unknown or unusable.
        :raises DataError: the ``init`` file is missing or not a checkpoint.
        """
        dev = self.resolve_device(settings.device)
        try:
            torch.empty(1, device=dev)
        except Exception as exc:  # noqa: BLE001 - any failure means the device cannot be used
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"device {settings.device!r} cannot be used ({first}); use 'auto', 'cpu', 'cuda' or 'cuda:N'"
            ) from exc
        if training and settings.init:
            read_state_dict(settings.init)

    def seed_everything(self, seed: int) -> None:
        """Seed Python, NumPy and torch (all devices); deterministic kernels
        where that costs little (see ``-o torch.deterministic``)."""
        seed = int(seed)
        random.seed(seed)
        np.random.seed(seed & 0xFFFFFFFF)
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        if self.options.deterministic:
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            if torch.cuda.is_available():
                # CPU kernels are deterministic already; the switch itself
                # imports torch._inductor (~3 s), so it is only worth it on CUDA.
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.use_deterministic_algorithms(True, warn_only=True)

    # ------------------------------------------------------------- weights
    def save_model(self, model: nn.Module, path: str | Path) -> Path:
        """Write the model's state_dict atomically."""
        return atomic_save(_unwrap(model).state_dict(), path)

    def load_model(self, model: nn.Module, path: str | Path, *, allow_partial: bool = False) -> nn.Module:
        """Load weights (``weights_only=True``) from a state_dict file or any
        checkpoint :func:`read_state_dict` understands."""
        state, where = read_state_dict(path)
        load_matching(_unwrap(model), state, what=f"weights {path} {where}", allow_partial=allow_partial)
        return model

    def read_state_dict(self, path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
        """Network weights from a checkpoint file, and where in it they were."""
        return read_state_dict(path)

    def match_state_dict(self, model: nn.Module, state: Mapping[str, torch.Tensor]) -> StateMatch:
        """Missing, unexpected and shape-mismatched keys of ``state`` for ``model``."""
        return match_state_dict(_unwrap(model), state)

    def load_state_dict(self, model: nn.Module, state: Mapping[str, torch.Tensor], *,
                        what: str = "checkpoint", allow_partial: bool = False) -> StateMatch:
        return load_matching(_unwrap(model), state, what=what, allow_partial=allow_partial)

    # ------------------------------------------------------------- training
    def train(
        self,
        model: nn.Module,
        loss_fn: nn.Module,
        train_set,
        *,
        backbone_spec,
        settings,
        workdir: str | Path,
        seed: int,
        resume: bool = True,
        init: str | None = None,
        on_epoch_end: Callable[[int, nn.Module], Mapping[str, Any] | None] | None = None,
        progress: bool = True,
        sampler: str = "random",
        rank: int | None = None,
        world: int | None = None,
    ) -> TrainOutcome:
        """Train ``model`` with ``loss_fn`` on ``train_set``.

        :param train_set: a :class:`harness.types.ImageSet`.
        :param backbone_spec: gives input size and normalisation.
        :param settings: a :class:`harness.config.TrainSettings`; every field
            is honoured (``device`` and ``init`` included; the ``init``
            argument wins over ``settings.init``).
        :param workdir: the run folder; checkpoints go to ``workdir/checkpoints``.
        :param resume: continue from ``workdir/checkpoints/last.pt`` when it exists.
        :param init: a checkpoint whose backbone weights start the training
            (fine-tuning); ignored when resuming.
        :param on_epoch_end: called as ``on_epoch_end(epoch, model)`` after
            each complete epoch (``epoch`` counts from 1); the metrics it
            returns are stored in ``history["eval"]``.
        :param sampler: ``"random"`` or ``"pk"`` (the loss spec's sampler).
        :param rank, world: this process's rank and the world size; None
            takes them from the initialised ``torch.distributed`` process
            group (one process without one).  Given explicitly they must
            match the process group.
        """
        trainer = Trainer(self, model, loss_fn, train_set, backbone_spec=backbone_spec, settings=settings,
                          workdir=workdir, seed=seed, sampler=sampler, ranks=Ranks.current(rank, world))
        return trainer.fit(resume=resume, init=init if init is not None else settings.init,
                           on_epoch_end=on_epoch_end, progress=progress)

    # ------------------------------------------------------------ inference
    def embed(
        self,
        model: nn.Module,
        images: Sequence[np.ndarray] | Callable[[int], np.ndarray],
        n: int | None = None,
        *,
        backbone_spec,
        batch_size: int = 64,
        flip: str | None = None,
        device: str = "auto",
        progress: bool = False,
    ) -> np.ndarray:
        """Embeddings of images, in order.

        :param images: a sequence of RGB uint8 images, an object with
            ``load(i)`` and ``len()`` (an ImageSet), or a callable
            ``images(i) -> image`` together with ``n``.
        :param flip: ``"concat"``: [f(x), f(flip x)] -> (N, 2D); ``"sum"``:
            f(x) + f(flip x) -> (N, D); ``None``: f(x).
        :returns: float32 (N, D) or (N, 2D).
        """
        get, count = embed_source(images, n, flip=flip, batch_size=batch_size)
        precision = Precision.for_device(self.resolve_device(device), self.options)
        transform = ImageTransform(_input_size(model, backbone_spec), backbone_spec.mean, backbone_spec.std)
        was_training = model.training
        precision.place(model)
        model.eval()
        out: list[np.ndarray] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=count, unit="img", desc="embed", dynamic_ncols=True, file=sys.stderr)
        try:
            with torch.inference_mode():
                for start in range(0, count, batch_size):
                    idx = range(start, min(count, start + batch_size))
                    x = precision.batch(torch.from_numpy(np.stack([transform(get(i)) for i in idx])))
                    with precision.autocast():
                        f = model(x).float()
                        if flip is not None:
                            g = model(torch.flip(x, dims=[3])).float()
                            f = torch.cat([f, g], dim=1) if flip == "concat" else f + g
                    out.append(f.cpu().numpy().astype(np.float32, copy=False))
                    if bar is not None:
                        bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
            model.train(was_training)
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out, axis=0)

    def time_forward(self, model: nn.Module, backbone_spec, *, batch: int, repeats: int = 5,
                     device: str = "auto") -> float:
        """Milliseconds per image of a forward pass at ``batch`` (best of ``repeats``)."""
        dev = self.resolve_device(device)
        h, w = _input_size(model, backbone_spec)
        x = torch.randn(batch, 3, int(h), int(w), device=dev)
        was_training = model.training
        model.to(dev).eval()
        best = float("inf")
        try:
            with torch.inference_mode():
                model(x)  # warm-up
                for _ in range(max(1, repeats)):
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t = time.perf_counter()
                    model(x)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    best = min(best, time.perf_counter() - t)
        finally:
            model.train(was_training)
        return 1000.0 * best / batch
