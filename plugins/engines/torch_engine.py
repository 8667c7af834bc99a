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

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError, DataError, HarnessError

from . import TorchEngineOptions
from ._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    StateMatch,
    atomic_save,
    load_matching,
    match_state_dict,
    read_checkpoint,
    read_state_dict,
)
from ._data import EpochPlan, ImageTransform, TrainDataset, plan_epoch, steps_per_epoch

__all__ = ["LRSchedule", "TorchEngine", "TrainOutcome", "build", "param_groups"]

log = logging.getLogger(__name__)

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def build(options: TorchEngineOptions | None = None) -> "TorchEngine":
    """Factory named by the ``torch`` engine spec."""
    return TorchEngine(options or TorchEngineOptions())


# ------------------------------------------------------------------ results
@dataclass
class TrainOutcome:
    """What :meth:`TorchEngine.train` returns.

    :param model: the trained backbone, in eval mode.
    :param loss_fn: the trained loss (class weights / centres), in eval mode.
    :param history: per-step lists ``step`` (1-based global step), ``epoch``
        (1-based epoch of the step), ``loss``, ``lr``, ``accuracy`` (batch
        accuracy of a classifier loss, else None) and ``img_per_s``; and
        ``eval``: one dict per completed epoch with ``epoch``, ``step`` and
        the metrics ``on_epoch_end`` returned.
    :param steps: global optimizer steps done (including before a resume).
    :param epochs_done: complete epochs.
    :param checkpoint: the final checkpoint (``workdir/checkpoints/last.pt``).
    :param resumed_from_step: the step the run resumed from, or None.
    :param wall_s: seconds this call spent (not counting earlier runs).
    :param device: the torch device trained on.
    :param stopped_by: ``"epochs"``, ``"max_steps"`` or ``"time_budget"``.
    :param init: how ``init=`` weights matched the model, when given.
    """

    model: nn.Module
    loss_fn: nn.Module
    history: dict[str, Any]
    steps: int
    epochs_done: int
    checkpoint: Path
    resumed_from_step: int | None
    wall_s: float
    device: str
    stopped_by: str
    init: dict[str, Any] | None = None


# ----------------------------------------------------------------- schedule
class LRSchedule:
    """Learning rate as a pure function of the global step.

    * warm-up: linear, ``lr * (s + 1) / (warmup + 1)`` for ``s < warmup``;
    * ``cosine``: ``lr * (1 + cos(pi * t)) / 2`` with ``t`` the fraction of
      the post-warm-up steps done (reaches ~0 at ``total_steps``);
    * ``step``: ``lr * gamma ** (milestones passed)``, milestones given as
      fractions of the post-warm-up steps;
    * ``constant``: ``lr``.
    """

    def __init__(
        self,
        name: str,
        base_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        milestones: Sequence[float] = (0.5, 0.75),
        gamma: float = 0.1,
    ) -> None:
        if name not in ("cosine", "step", "constant"):
            raise ConfigError(f"scheduler must be cosine, step or constant, got {name!r}")
        self.name = name
        self.base_lr = float(base_lr)
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self.milestones = tuple(float(m) for m in milestones)
        self.gamma = float(gamma)

    def factor(self, step: int) -> float:
        w = self.warmup_steps
        if step < w:
            return (step + 1) / (w + 1)
        span = max(1, self.total_steps - w)
        t = min(1.0, (step - w) / span)
        if self.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if self.name == "step":
            return self.gamma ** sum(t >= m for m in self.milestones)
        return 1.0

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
        }


# ----------------------------------------------------------- param groups
def param_groups(
    modules: Mapping[str, nn.Module], weight_decay: float
) -> list[dict[str, Any]]:
    """Two optimizer groups: with and without weight decay.

    Normalisation layers (BatchNorm, GroupNorm, LayerNorm, InstanceNorm),
    biases and every other 1-D parameter (e.g. PReLU slopes) get no weight
    decay; weight matrices and kernels — the loss's class weights included —
    do.  Each group carries ``names`` (``"<module>.<parameter>"``) so the
    split can be inspected.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    decay_names: list[str] = []
    no_decay_names: list[str] = []
    seen: set[int] = set()
    for prefix, module in modules.items():
        for mod_name, mod in module.named_modules():
            for p_name, p in mod.named_parameters(recurse=False):
                if not p.requires_grad or id(p) in seen:
                    continue
                seen.add(id(p))
                full = ".".join(s for s in (prefix, mod_name, p_name) if s)
                if isinstance(mod, _NORM_TYPES) or p_name.endswith("bias") or p.ndim <= 1:
                    no_decay.append(p)
                    no_decay_names.append(full)
                else:
                    decay.append(p)
                    decay_names.append(full)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, "names": decay_names})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "names": no_decay_names})
    if not groups:
        raise ConfigError("nothing to train: the model and loss have no trainable parameters")
    return groups


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
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device; use 'auto' or 'cpu'")
        return dev

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
        rank, world, dist_on = _distributed_context(rank, world)
        is_main = rank == 0
        t_start = time.monotonic()
        opts = self.options
        workdir = Path(workdir)
        ckpt_dir = workdir / "checkpoints"
        last_path = ckpt_dir / "last.pt"
        device = self.resolve_device(settings.device)
        if dist_on and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        init = init if init is not None else settings.init

        n_images = len(train_set)
        if n_images == 0:
            raise DataError("the training set is empty")
        labels = np.asarray(train_set.labels)
        if (labels < 0).any():
            raise DataError("the training set has images without an identity label (-1)")
        per_epoch = steps_per_epoch(n_images, settings.batch_size)
        if per_epoch == 0:
            raise DataError(
                f"the training set has {n_images} images, fewer than one batch of "
                f"{settings.batch_size}: lower training.batch_size or train on more images"
            )
        total_steps = settings.epochs * per_epoch
        if settings.max_steps is not None:
            total_steps = min(total_steps, settings.max_steps)
        plan_key = {
            "num_images": n_images,
            "batch_size": settings.batch_size,
            "seed": int(seed),
            "sampler": sampler,
            "pk_k": opts.pk_k if sampler == "pk" else None,
            "world": world,
        }

        # ---- devices, precision, optimizer
        use_cuda = device.type == "cuda"
        channels_last = use_cuda and opts.channels_last
        model.to(device)
        loss_fn.to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if use_cuda and opts.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif device.type == "cpu" and opts.cpu_bf16:
            amp_dtype = torch.bfloat16
        else:
            amp_dtype = None
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)

        groups = param_groups({"model": model, "loss": loss_fn}, settings.weight_decay)
        if settings.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=settings.lr, momentum=opts.momentum
            )
        else:
            optimizer = torch.optim.AdamW(groups, lr=settings.lr)
        schedule = LRSchedule(
            settings.scheduler, settings.lr, total_steps, settings.warmup_steps,
            opts.step_milestones, opts.step_gamma,
        )

        # ---- state: fresh, resumed or fine-tuned
        step, epoch, position = 0, 0, 0
        history: dict[str, Any] = {k: [] for k in ("step", "epoch", "loss", "lr", "accuracy", "img_per_s")}
        history["eval"] = []
        resumed_from: int | None = None
        init_report: dict[str, Any] | None = None
        ck = None
        if is_main and resume and last_path.exists():
            ck = read_checkpoint(last_path)
            self._check_resumable(ck, last_path, plan_key)
        if dist_on:
            ck = _broadcast_object(ck if is_main else None)
        if ck is not None:
            shards = (ck.get("dist") or {}).get("shards")
            load_matching(model, ck["model"], what=f"checkpoint {last_path} (model)", allow_partial=False)
            if shards:
                if len(shards) != world:
                    raise ConfigError(
                        f"cannot resume from {last_path}: its sharded loss was saved by {len(shards)} "
                        f"ranks, this run has {world}; start afresh (--force) or use {len(shards)} processes"
                    )
                load_matching(loss_fn, shards[rank]["loss"], what=f"checkpoint {last_path} (loss, rank {rank})",
                              allow_partial=False)
                optimizer.load_state_dict(shards[rank]["optimizer"])
            else:
                if ck.get("loss"):
                    load_matching(loss_fn, ck["loss"], what=f"checkpoint {last_path} (loss)",
                                  allow_partial=False)
                optimizer.load_state_dict(ck["optimizer"])
            if ck.get("scaler"):
                scaler.load_state_dict(ck["scaler"])
            step, epoch, position = int(ck["step"]), int(ck["epoch"]), int(ck["position"])
            history = ck["history"]
            _set_rng_state(ck["rng"])
            resumed_from = step
            log.info("resuming from %s at step %d (epoch %d, batch %d)", last_path, step, epoch + 1, position)
        elif init:
            state, where = read_state_dict(init)
            match = load_matching(model, state, what=f"init checkpoint {init} {where}", allow_partial=True)
            init_report = {"path": str(init), **match.to_dict()}
            if not match.exact:
                log.warning("init %s: %s", init, match.summary())
            model.to(device)

        # ---- data
        transform = ImageTransform(_input_size(model, backbone_spec), backbone_spec.mean, backbone_spec.std)
        dataset = TrainDataset(train_set, transform)

        def make_loader(plan: EpochPlan, start: int) -> torch.utils.data.DataLoader:
            gen = torch.Generator()
            gen.manual_seed(int(seed) * 1_000_003 + epoch)
            return torch.utils.data.DataLoader(
                dataset,
                batch_sampler=plan.batches(start),
                num_workers=settings.workers,
                pin_memory=use_cuda,
                generator=gen,  # keeps the global torch RNG untouched
                worker_init_fn=_worker_init if settings.workers else None,
                persistent_workers=False,
            )

        has_logits = callable(getattr(loss_fn, "logits", None))
        sharded = bool(getattr(loss_fn, "sharded", False))
        model.train()
        loss_fn.train()

        # ---- DDP wrappers (deleted in the `finally` below)
        train_model: nn.Module = model
        train_loss: nn.Module = loss_fn
        if dist_on:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if device.type == "cuda" else None
            train_model = DDP(model, device_ids=ids, output_device=device.index if ids else None)
            if not sharded and any(p.requires_grad for p in loss_fn.parameters()):
                train_loss = DDP(loss_fn, device_ids=ids, output_device=device.index if ids else None)
        sharded_params = [p for p in loss_fn.parameters() if p.requires_grad] if sharded and dist_on else []

        saved = {"step": -1}

        def save(at_epoch: int, at_position: int) -> None:
            shards = None
            if dist_on and sharded:
                # every rank holds different centres: rank 0 gathers them all
                mine = {"loss": _to_cpu(loss_fn.state_dict()), "optimizer": _to_cpu(optimizer.state_dict())}
                import torch.distributed as dist

                shards = [None] * world if is_main else None
                dist.gather_object(mine, shards, dst=0)
            saved["step"] = step
            if not is_main:
                return
            ck = {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "model": _unwrap(model).state_dict(),
                "loss": {} if shards else loss_fn.state_dict(),
                "dist": {"world": world, "shards": shards},
                "optimizer": optimizer.state_dict(),
                "scheduler": {**schedule.state_dict(), "last_step": step},
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "step": step,
                "epoch": at_epoch,
                "position": at_position,
                "plan": plan_key,
                "settings": _plain(dataclasses.asdict(settings)),
                "rng": _get_rng_state(),
                "history": history,
                "backbone_spec": {
                    "name": getattr(backbone_spec, "name", ""),
                    "input_size": list(backbone_spec.input_size),
                    "embedding_size": int(getattr(backbone_spec, "embedding_size", 0)),
                },
            }
            atomic_save(ck, last_path)
            _write_json(ckpt_dir / "last.json",
                        {"step": step, "epoch": at_epoch, "position": at_position, "file": last_path.name})

        # ---- the loop
        bar = _progress_bar(progress, total_steps, step, settings.batch_size)
        stopped_by = "epochs"
        t_budget = settings.time_budget
        try:
            while epoch < settings.epochs and stopped_by == "epochs":
                plan = plan_epoch(
                    labels, batch_size=settings.batch_size, seed=seed, epoch=epoch,
                    sampler=sampler, k=opts.pk_k, rank=rank, world=world,
                )
                if position < len(plan):
                    t_prev = time.perf_counter()
                    batches = iter(make_loader(plan, position))
                    while position < len(plan):
                        if step >= total_steps:
                            stopped_by = "max_steps"
                            break
                        lr = schedule.lr(step)
                        failure: BaseException | None = None
                        loss = None
                        try:
                            batch = next(batches, None)
                            if batch is None:
                                break
                            x, y = batch
                            for g in optimizer.param_groups:
                                g["lr"] = lr
                            x = x.to(device, non_blocking=True)
                            y = y.to(device, non_blocking=True)
                            if channels_last:
                                x = x.contiguous(memory_format=torch.channels_last)
                            with _autocast(device, amp_dtype):
                                emb = train_model(x)
                            emb = emb.float()
                            if not sharded:
                                loss = train_loss(emb, y)
                        except Exception as exc:
                            if not dist_on:
                                raise
                            failure = exc
                        if dist_on:
                            # every rank learns whether all others got this far
                            ok, loss_sum = _agree(failure is None, loss, device)
                            if failure is not None:
                                raise failure
                            if ok < world:
                                raise HarnessError(
                                    f"{world - ok} other rank(s) failed at step {step + 1}; "
                                    "stopping all ranks (their log holds the error)"
                                )
                            if sharded:
                                loss = train_loss(emb, y)  # collective; the same value on every rank
                                loss_v = float(loss.detach())
                            else:
                                loss_v = loss_sum / world
                        else:
                            assert loss is not None
                            loss_v = float(loss.detach())
                        if not math.isfinite(loss_v):
                            raise HarnessError(
                                f"training diverged: loss is {loss_v} at step {step + 1} "
                                f"(lr {lr:.3g}); lower training.lr or raise warmup_steps"
                            )
                        optimizer.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                        if settings.grad_clip is not None and settings.grad_clip > 0:
                            scaler.unscale_(optimizer)
                            params = [p for g in optimizer.param_groups for p in g["params"]]
                            if sharded_params:
                                _clip_sharded(params, sharded_params, settings.grad_clip)
                            else:
                                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
                        scaler.step(optimizer)
                        scaler.update()
                        acc = None
                        if sharded and hasattr(loss_fn, "batch_accuracy"):
                            acc = loss_fn.batch_accuracy(emb.detach(), y)
                        elif has_logits:
                            with torch.no_grad():
                                acc = float((loss_fn.logits(emb.detach()).argmax(1) == y).float().mean())
                        step += 1
                        position += 1
                        now = time.perf_counter()
                        ips = len(y) * world / max(now - t_prev, 1e-9)
                        t_prev = now
                        for k, v in (("step", step), ("epoch", epoch + 1), ("loss", loss_v),
                                     ("lr", lr), ("accuracy", acc), ("img_per_s", ips)):
                            history[k].append(v)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_v:.4f}", lr=f"{lr:.3g}",
                                            img_s=f"{ips:.1f}", refresh=False)
                        if step % settings.checkpoint_every == 0:
                            save(epoch, position)
                        if t_budget is not None and _any_rank(
                                time.monotonic() - t_start >= t_budget, device, dist_on):
                            stopped_by = "time_budget"
                            break
                        if step >= total_steps and position < len(plan):
                            stopped_by = "max_steps"
                            break
                if stopped_by != "epochs":
                    break
                # the epoch is complete
                epoch += 1
                position = 0
                if on_epoch_end is not None:
                    metrics = on_epoch_end(epoch, model) or {}
                    history["eval"].append({"epoch": epoch, "step": step, **_plain(dict(metrics))})
                    model.train()
                    loss_fn.train()
                save(epoch, 0)
                if step >= total_steps and epoch < settings.epochs:
                    stopped_by = "max_steps"
            if saved["step"] != step or (is_main and not dist_on and not last_path.exists()):
                save(epoch, position)
        finally:
            if bar is not None:
                bar.close()
            # Tear the DDP wrappers down now, before the runner destroys the
            # process group (gloo otherwise aborts at exit now and then).
            del train_model, train_loss

        model.eval()
        loss_fn.eval()
        return TrainOutcome(
            model=model,
            loss_fn=loss_fn,
            history=history,
            steps=step,
            epochs_done=epoch,
            checkpoint=last_path,
            resumed_from_step=resumed_from,
            wall_s=time.monotonic() - t_start,
            device=str(device),
            stopped_by=stopped_by,
            init=init_report,
        )

    @staticmethod
    def _check_resumable(ck: Any, path: Path, plan_key: Mapping[str, Any]) -> None:
        if not isinstance(ck, Mapping) or ck.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(
                f"{path} is not a facebench training checkpoint; move it away or train with resume=False"
            )
        old = ck.get("plan", {})
        diff = {k: (old.get(k), v) for k, v in plan_key.items() if old.get(k) != v}
        if diff:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"cannot resume from {path}: the run changed ({what}), so the data order "
                "would differ. Restore the settings, or start afresh (resume=False / --force)."
            )

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
        if flip not in (None, "concat", "sum"):
            raise ConfigError(f"flip must be 'concat', 'sum' or None, got {flip!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if callable(images) and not hasattr(images, "__len__"):
            if n is None:
                raise ConfigError("embed(images=callable) needs n, the number of images")
            get, count = images, int(n)
        elif hasattr(images, "load"):
            get, count = images.load, len(images)  # type: ignore[union-attr]
        else:
            get, count = images.__getitem__, len(images)  # type: ignore[union-attr]
        dev = self.resolve_device(device)
        transform = ImageTransform(_input_size(model, backbone_spec), backbone_spec.mean, backbone_spec.std)
        use_cuda = dev.type == "cuda"
        amp_dtype = None
        if use_cuda and self.options.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif dev.type == "cpu" and self.options.cpu_bf16:
            amp_dtype = torch.bfloat16
        channels_last = use_cuda and self.options.channels_last
        was_training = model.training
        model.to(dev)
        if channels_last:
            model.to(memory_format=torch.channels_last)
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
                    x = torch.from_numpy(np.stack([transform(get(i)) for i in idx])).to(dev)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with _autocast(dev, amp_dtype):
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


# ----------------------------------------------------------------- helpers
def _distributed_context(rank: int | None, world: int | None) -> tuple[int, int, bool]:
    """(rank, world, process group initialised) for :meth:`TorchEngine.train`."""
    import torch.distributed as dist

    on = dist.is_available() and dist.is_initialized()
    if not on:
        if (world is not None and world != 1) or (rank is not None and rank != 0):
            raise ConfigError(
                f"rank {rank} of world {world} asked for, but no torch.distributed process group is "
                "initialised: launch distributed training through the torchrun runner "
                "(harness run --nproc-per-node N)"
            )
        return 0, 1, False
    r, w = dist.get_rank(), dist.get_world_size()
    if (rank is not None and rank != r) or (world is not None and world != w):
        raise ConfigError(
            f"train(rank={rank}, world={world}) does not match the process group (rank {r} of {w})"
        )
    return r, w, True


def _broadcast_object(obj: Any) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _agree(ok: bool, loss: torch.Tensor | None, device: torch.device) -> tuple[int, float]:
    """All-reduce (ranks that succeeded, sum of their losses): one tiny collective per step."""
    import torch.distributed as dist

    value = float(loss.detach()) if (ok and loss is not None) else 0.0
    t = torch.tensor([1.0 if ok else 0.0, value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(round(float(t[0]))), float(t[1])


def _any_rank(flag: bool, device: torch.device, dist_on: bool) -> bool:
    """True when ``flag`` holds on any rank (so all ranks stop together)."""
    if not dist_on:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _clip_sharded(params: Sequence[nn.Parameter], sharded: Sequence[nn.Parameter], max_norm: float) -> None:
    """clip_grad_norm_ over replicated ``params`` and rank-local ``sharded``
    ones: the sharded squared norms are summed over the ranks, so every rank
    scales by the norm of the whole (unsharded) gradient."""
    import torch.distributed as dist

    ids = {id(p) for p in sharded}
    rep_grads = [p.grad for p in params if p.grad is not None and id(p) not in ids]
    sh_grads = [p.grad for p in sharded if p.grad is not None]
    dev = (rep_grads or sh_grads)[0].device
    sq_rep = sum((g.detach().float().pow(2).sum() for g in rep_grads), torch.zeros((), device=dev))
    sq_sh = sum((g.detach().float().pow(2).sum() for g in sh_grads), torch.zeros((), device=dev))
    dist.all_reduce(sq_sh, op=dist.ReduceOp.SUM)
    total = torch.sqrt(sq_rep + sq_sh)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in (*rep_grads, *sh_grads):
        g.detach().mul_(coef.to(g.dtype))


def _to_cpu(value: Any) -> Any:
    """A state dict with every tensor moved to the CPU (safe to pickle across ranks)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model) if isinstance(
        model, (nn.DataParallel, nn.parallel.DistributedDataParallel)
    ) else model


def _input_size(model: nn.Module, spec) -> tuple[int, int]:
    """(H, W) the network was built for: the model's own ``input_size``
    (options such as ``-o mobilefacenet.input_size=112,96`` change it), else
    the spec's."""
    size = getattr(_unwrap(model), "input_size", None) or spec.input_size
    return int(size[0]), int(size[1])


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _worker_init(_worker_id: int) -> None:
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(0)
    except ImportError:  # pragma: no cover - cv2 is a dependency of the torch extra
        pass


def _progress_bar(enabled: bool, total: int, initial: int, batch_size: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train", dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


def _get_rng_state() -> dict[str, Any]:
    """RNG states as weights_only-safe values (tensors, ints, tuples)."""
    py = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": py,
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state((
        npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
        npst["has_gauss"], npst["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers (JSON- and weights_only-safe)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    from harness.atomic import atomic_output

    with atomic_output(path, "w") as fh:
        fh.write(json.dumps(data))
