"""The torch engine's training loop, in parts (in the spirit of insightface
arcface_torch's callback objects):

* :class:`Precision` — device, autocast dtype, channels-last and the
  gradient scaler (shared with :meth:`TorchEngine.embed`);
* :class:`Ranks` — rank, world and the few collectives training needs;
* :class:`Checkpointer` — restore-or-init at the start, atomic saves of
  ``workdir/checkpoints/last.pt`` (rank 0; a sharded loss's centres are
  gathered to it);
* :class:`StepFunction` — one optimizer step on one batch (DDP-wrapped
  model and loss, agreement of the ranks, divergence check, clipping);
* :class:`Trainer` — validates the inputs, builds the optimizer and
  schedule, and runs epochs of steps with their stops, saves and
  ``on_epoch_end`` evaluations.

:meth:`facebench_plugins.engines.torch_engine.TorchEngine.train` documents
the behaviour; this module is its implementation.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from harness.errors import ConfigError, DataError, HarnessError
from harness.run_loggers import RunLoggers, open_training_loggers

from ._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    atomic_save,
    load_matching,
    read_checkpoint,
    read_state_dict,
)
from ._data import EpochPlan, ImageTransform, TrainDataset, TrainOutcome, plan_epoch, steps_per_epoch

__all__ = ["Checkpointer", "LRSchedule", "Precision", "Ranks", "StepFunction", "TrainOutcome", "Trainer",
           "bf16_supported", "cpu_bf16_fast", "cpu_bf16_supported", "param_groups"]

log = logging.getLogger("facebench_plugins.engines.torch_engine")

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
)

_HISTORY_KEYS = ("step", "epoch", "loss", "lr", "accuracy", "img_per_s")


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


# --------------------------------------------------------------- precision
@dataclass
class Precision:
    """Where and in what precision the network runs.

    :param amp_dtype: autocast dtype (bf16 with ``precision`` bf16 / auto
        where supported; bf16 or fp16 on CUDA with ``amp``; bf16 on the CPU
        with ``cpu_bf16``), None for full precision.
    :param channels_last: channels-last memory format (with bf16 through
        ``precision``, or on CUDA with ``channels_last``).
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool

    @classmethod
    def for_device(cls, device: torch.device, options) -> "Precision":
        """The precision ``options`` ask for on ``device``: ``precision: bf16``, or ``auto`` where
        :func:`bf16_supported`, is bf16 autocast + channels-last; otherwise ``amp`` / ``channels_last``
        (CUDA) and ``cpu_bf16`` (CPU) decide."""
        use_cuda = device.type == "cuda"
        choice = getattr(options, "precision", "fp32")
        if choice == "bf16" or (choice == "auto" and bf16_supported(device)):
            return cls(device, torch.bfloat16, True)
        if use_cuda and options.amp:
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        elif device.type == "cpu" and options.cpu_bf16:
            amp_dtype = torch.bfloat16
        else:
            amp_dtype = None
        return cls(device, amp_dtype, use_cuda and options.channels_last)

    def place(self, model: nn.Module) -> None:
        """Move ``model`` to the device (and memory format)."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self):
        return _autocast(self.device, self.amp_dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled for fp16 only."""
        return torch.amp.GradScaler("cuda", enabled=self.amp_dtype is torch.float16)


def _cpu_flags(flags: str | None) -> set[str]:
    """The CPU's feature flags (the ``flags`` line of ``/proc/cpuinfo`` when ``flags`` is None)."""
    if flags is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                flags = next((line.split(":", 1)[1] for line in fh if line.startswith("flags")), "")
        except OSError:  # not Linux: no flags to read, so nothing claimed
            flags = ""
    return set(flags.split())


def _mkldnn(mkldnn: bool | None) -> bool:
    return bool(torch.backends.mkldnn.is_available()) if mkldnn is None else bool(mkldnn)


def cpu_bf16_supported(flags: str | None = None, mkldnn: bool | None = None) -> bool:
    """Whether this CPU has bf16 instructions: torch built with oneDNN (mkldnn) and the CPU
    flag ``amx_bf16`` or ``avx512_bf16``.  ``flags`` (the ``flags`` line of
    ``/proc/cpuinfo``; read when None) and ``mkldnn`` are for tests."""
    return _mkldnn(mkldnn) and bool({"amx_bf16", "avx512_bf16"} & _cpu_flags(flags))


def cpu_bf16_fast(flags: str | None = None, mkldnn: bool | None = None) -> bool:
    """Whether bf16 training is *faster* than float32 on this CPU: oneDNN and AMX (``amx_bf16``,
    the tile matrix unit of Sapphire Rapids and later).  ``avx512_bf16`` alone (Cooper Lake,
    Zen 4) converts and dot-multiplies bf16 but has no matrix unit: on this project's 2-core
    machine (avx512_bf16, no AMX) an lresnet50 step ran 3.92 img/s in bf16 against 5.23 in
    float32 (docs/precision.md), so ``precision: auto`` keeps float32 there."""
    return _mkldnn(mkldnn) and "amx_bf16" in _cpu_flags(flags)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` trains faster in bf16 than in float32, so that ``precision: auto`` (the
    default) picks bf16 autocast + channels-last there: a CUDA device with bf16
    (``torch.cuda.is_bf16_supported()``: compute capability 8 or more) or an AMX CPU
    (:func:`cpu_bf16_fast`)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_bf16_fast()
    return False


# ------------------------------------------------------------------- ranks
@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    on: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def current(cls, rank: int | None = None, world: int | None = None) -> "Ranks":
        """From the initialised ``torch.distributed`` group; ``rank`` and
        ``world``, when given, must match it."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            if (world is not None and world != 1) or (rank is not None and rank != 0):
                raise ConfigError(
                    f"rank {rank} of world {world} asked for, but no torch.distributed process group is "
                    "initialised: launch distributed training through the torchrun runner "
                    "(harness run --nproc-per-node N)"
                )
            return cls()
        r, w = dist.get_rank(), dist.get_world_size()
        if (rank is not None and rank != r) or (world is not None and world != w):
            raise ConfigError(
                f"train(rank={rank}, world={world}) does not match the process group (rank {r} of {w})"
            )
        return cls(r, w, True)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.on:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_to_main(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None elsewhere)."""
        import torch.distributed as dist

        out = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def agree(self, ok: bool, loss: torch.Tensor | None, device: torch.device) -> tuple[int, float]:
        """All-reduce (ranks that succeeded, sum of their losses): one tiny collective per step."""
        import torch.distributed as dist

        value = float(loss.detach()) if (ok and loss is not None) else 0.0
        t = torch.tensor([1.0 if ok else 0.0, value], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return int(round(float(t[0]))), float(t[1])

    def any(self, flag: bool, device: torch.device) -> bool:
        """True when ``flag`` holds on any rank (so all ranks stop together)."""
        if not self.on:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


# ------------------------------------------------------------------- state
@dataclass
class TrainState:
    """Where training stands: what a checkpoint restores."""

    step: int = 0
    epoch: int = 0  # complete epochs
    position: int = 0  # batches done within the current epoch
    history: dict[str, Any] = field(default_factory=lambda: {**{k: [] for k in _HISTORY_KEYS}, "eval": []})
    resumed_from: int | None = None
    init_report: dict[str, Any] | None = None


# ------------------------------------------------------------ checkpointer
class Checkpointer:
    """Restore-or-init at the start; atomic saves of ``last.pt`` during training.

    :param parts: the model, loss, optimizer and gradient scaler saved and restored.
    :param plan_key: what fixes the data order; a checkpoint with another one
        cannot be resumed.
    """

    def __init__(self, workdir: Path, *, model: nn.Module, loss_fn: nn.Module, optimizer, scaler,
                 schedule: LRSchedule, plan_key: Mapping[str, Any], settings, backbone_spec,
                 ranks: Ranks, sharded: bool) -> None:
        self.dir = workdir / "checkpoints"
        self.last = self.dir / "last.pt"
        self.model, self.loss_fn, self.optimizer, self.scaler = model, loss_fn, optimizer, scaler
        self.schedule, self.plan_key, self.settings = schedule, plan_key, settings
        self.backbone_spec, self.ranks, self.sharded = backbone_spec, ranks, sharded
        self.saved_step = -1

    # ------------------------------------------------------------ restore
    def restore_or_init(self, state: TrainState, *, resume: bool, init: str | None, device: torch.device) -> None:
        """Resume from ``last.pt`` (rank 0 reads, all ranks load), else load
        ``init`` backbone weights (fine-tuning), else keep the fresh state."""
        ck = None
        if self.ranks.main and resume and self.last.exists():
            ck = read_checkpoint(self.last)
            check_resumable(ck, self.last, self.plan_key)
        ck = self.ranks.broadcast(ck if self.ranks.main else None)
        if ck is not None:
            self._load(ck, state)
        elif init:
            state_dict, where = read_state_dict(init)
            match = load_matching(self.model, state_dict, what=f"init checkpoint {init} {where}",
                                  allow_partial=True)
            state.init_report = {"path": str(init), **match.to_dict()}
            if not match.exact:
                log.warning("init %s: %s", init, match.summary())
            self.model.to(device)

    def _load(self, ck: Mapping[str, Any], state: TrainState) -> None:
        rank, world, last = self.ranks.rank, self.ranks.world, self.last
        shards = (ck.get("dist") or {}).get("shards")
        load_matching(self.model, ck["model"], what=f"checkpoint {last} (model)", allow_partial=False)
        if shards:
            if len(shards) != world:
                raise ConfigError(
                    f"cannot resume from {last}: its sharded loss was saved by {len(shards)} "
                    f"ranks, this run has {world}; start afresh (--force) or use {len(shards)} processes"
                )
            load_matching(self.loss_fn, shards[rank]["loss"], what=f"checkpoint {last} (loss, rank {rank})",
                          allow_partial=False)
            self.optimizer.load_state_dict(shards[rank]["optimizer"])
        else:
            if ck.get("loss"):
                load_matching(self.loss_fn, ck["loss"], what=f"checkpoint {last} (loss)", allow_partial=False)
            self.optimizer.load_state_dict(ck["optimizer"])
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        state.step, state.epoch, state.position = int(ck["step"]), int(ck["epoch"]), int(ck["position"])
        state.history = ck["history"]
        _set_rng_state(ck["rng"])
        state.resumed_from = state.step
        log.info("resuming from %s at step %d (epoch %d, batch %d)", last, state.step, state.epoch + 1,
                 state.position)

    # --------------------------------------------------------------- save
    def save(self, state: TrainState, at_epoch: int, at_position: int) -> None:
        """Write ``last.pt`` and ``last.json`` (rank 0; every rank must call it
        with a sharded loss, whose centres are gathered)."""
        shards = None
        if self.ranks.on and self.sharded:
            # every rank holds different centres: rank 0 gathers them all
            shards = self.ranks.gather_to_main({"loss": _to_cpu(self.loss_fn.state_dict()),
                                                "optimizer": _to_cpu(self.optimizer.state_dict())})
        self.saved_step = state.step
        if not self.ranks.main:
            return
        spec = self.backbone_spec
        ck = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": _unwrap(self.model).state_dict(),
            "loss": {} if shards else self.loss_fn.state_dict(),
            "dist": {"world": self.ranks.world, "shards": shards},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {**self.schedule.state_dict(), "last_step": state.step},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "step": state.step,
            "epoch": at_epoch,
            "position": at_position,
            "plan": self.plan_key,
            "settings": _plain(dataclasses.asdict(self.settings)),
            "rng": _get_rng_state(),
            "history": state.history,
            "backbone_spec": {
                "name": getattr(spec, "name", ""),
                "input_size": list(spec.input_size),
                "embedding_size": int(getattr(spec, "embedding_size", 0)),
            },
        }
        atomic_save(ck, self.last)
        _write_json(self.dir / "last.json",
                    {"step": state.step, "epoch": at_epoch, "position": at_position, "file": self.last.name})

    def needs_final_save(self, state: TrainState) -> bool:
        return self.saved_step != state.step or (self.ranks.main and not self.ranks.on and not self.last.exists())


def check_resumable(ck: Any, path: Path, plan_key: Mapping[str, Any]) -> None:
    """Refuse a file that is not a training checkpoint, or one of another data order."""
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


# ------------------------------------------------------------------- step
class StepFunction:
    """One optimizer step: forward (DDP-wrapped model and loss), agreement of
    the ranks, divergence check, backward, clipping, update, batch accuracy.

    The DDP wrappers live here; :meth:`close` deletes them (before the
    runner destroys the process group).
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer, scaler, precision: Precision,
                 settings, ranks: Ranks, compile_model: bool = False) -> None:
        self.loss_fn, self.optimizer, self.scaler = loss_fn, optimizer, scaler
        self.precision, self.settings, self.ranks = precision, settings, ranks
        self.sharded = bool(getattr(loss_fn, "sharded", False))
        self.has_logits = callable(getattr(loss_fn, "logits", None))
        self.grad_norm: torch.Tensor | None = None  # the last step's (0-d), before clipping; read it with float()
        self.measure_grad_norm = False  # also without clipping (a run logger shows it)
        self.train_model: nn.Module | None = model
        self.train_loss: nn.Module | None = loss_fn
        if ranks.on:
            from torch.nn.parallel import DistributedDataParallel as DDP

            device = precision.device
            ids = [device.index] if device.type == "cuda" else None
            out = device.index if ids else None
            self.train_model = DDP(model, device_ids=ids, output_device=out)
            if not self.sharded and any(p.requires_grad for p in loss_fn.parameters()):
                self.train_loss = DDP(loss_fn, device_ids=ids, output_device=out)
        self.sharded_params = [p for p in loss_fn.parameters() if p.requires_grad] if self.sharded and ranks.on \
            else []
        if compile_model:  # the forward (and its backward) only; ``model`` keeps the plain weights' names
            self.train_model = torch.compile(self.train_model)

    def close(self) -> None:
        """Drop the DDP wrappers (and what holds the process group through them)."""
        self.train_model = self.train_loss = None

    def _forward(self, batches: Iterator, lr: float):
        """(x, y, embeddings, loss or None); None when the loader ran out."""
        batch = next(batches, None)
        if batch is None:
            return None
        x, y = batch
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        x = self.precision.batch(x)
        y = y.to(self.precision.device, non_blocking=True)
        with self.precision.autocast():
            emb = self.train_model(x)
        emb = emb.float()
        loss = self.train_loss(emb, y) if not self.sharded else None
        return y, emb, loss

    def __call__(self, batches: Iterator, lr: float, step: int) -> tuple[float, float | None, int] | None:
        """Train on the next batch of ``batches``: (loss, batch accuracy, this
        rank's batch size), or None when there is no next batch.  ``step``
        counts the steps done."""
        ranks = self.ranks
        failure: BaseException | None = None
        out = None
        try:
            out = self._forward(batches, lr)
            if out is None:
                return None
        except Exception as exc:
            if not ranks.on:
                raise
            failure = exc
        if ranks.on:
            # every rank learns whether all others got this far
            ok, loss_sum = ranks.agree(failure is None, out[2] if out else None, self.precision.device)
            if failure is not None:
                raise failure
            if ok < ranks.world:
                raise HarnessError(
                    f"{ranks.world - ok} other rank(s) failed at step {step + 1}; "
                    "stopping all ranks (their log holds the error)"
                )
        y, emb, loss = out
        if ranks.on and self.sharded:
            loss = self.train_loss(emb, y)  # collective; the same value on every rank
            loss_v = float(loss.detach())
        elif ranks.on:
            loss_v = loss_sum / ranks.world
        else:
            loss_v = float(loss.detach())
        if not math.isfinite(loss_v):
            raise HarnessError(
                f"training diverged: loss is {loss_v} at step {step + 1} "
                f"(lr {lr:.3g}); lower training.lr or raise warmup_steps"
            )
        self._update(loss)
        return loss_v, self._accuracy(emb, y), len(y)

    def _update(self, loss: torch.Tensor) -> None:
        opt, scaler, clip = self.optimizer, self.scaler, self.settings.grad_clip
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        clipping = clip is not None and clip > 0
        if clipping or self.measure_grad_norm:
            scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"]]
            limit = clip if clipping else math.inf  # inf: measured, left as they are
            if self.sharded_params:
                norm = _clip_sharded(params, self.sharded_params, limit)
            elif clipping:
                norm = torch.nn.utils.clip_grad_norm_(params, limit)
            else:
                norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            self.grad_norm = norm.detach()  # no device sync here: a logger reads it after the step
        scaler.step(opt)
        scaler.update()

    def _accuracy(self, emb: torch.Tensor, y: torch.Tensor) -> float | None:
        if self.sharded and hasattr(self.loss_fn, "batch_accuracy"):
            return self.loss_fn.batch_accuracy(emb.detach(), y)
        if self.has_logits:
            with torch.no_grad():
                return float((self.loss_fn.logits(emb.detach()).argmax(1) == y).float().mean())
        return None


# ---------------------------------------------------------------- trainer
class Trainer:
    """One call of :meth:`TorchEngine.train` (see there for the arguments)."""

    def __init__(self, engine, model: nn.Module, loss_fn: nn.Module, train_set, *, backbone_spec, settings,
                 workdir: str | Path, seed: int, sampler: str, ranks: Ranks) -> None:
        self.t_start = time.monotonic()
        self.opts = engine.options
        self.model, self.loss_fn, self.train_set = model, loss_fn, train_set
        self.backbone_spec, self.settings, self.seed, self.sampler = backbone_spec, settings, int(seed), sampler
        self.workdir, self.ranks = Path(workdir), ranks
        self.tracker = RunLoggers()  # opened by fit (settings.log: TensorBoard, MLflow)
        device = engine.resolve_device(settings.device)
        if ranks.on and device.type == "cuda" and device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        self.device = device
        self.labels, self.total_steps = self._check_data()
        self.plan_key = {
            "num_images": len(train_set),
            "batch_size": settings.batch_size,
            "seed": self.seed,
            "sampler": sampler,
            "pk_k": self.opts.pk_k if sampler == "pk" else None,
            "world": ranks.world,
        }

    def _check_data(self) -> tuple[np.ndarray, int]:
        settings, n_images = self.settings, len(self.train_set)
        if n_images == 0:
            raise DataError("the training set is empty")
        labels = np.asarray(self.train_set.labels)
        if (labels < 0).any():
            raise DataError("the training set has images without an identity label (-1)")
        per_epoch = steps_per_epoch(n_images, settings.batch_size)
        if per_epoch == 0:
            raise DataError(
                f"the training set has {n_images} images, fewer than one batch of "
                f"{settings.batch_size}: lower training.batch_size or train on more images"
            )
        total = settings.epochs * per_epoch
        if settings.max_steps is not None:
            total = min(total, settings.max_steps)
        return labels, total

    def _optimizer(self) -> tuple[torch.optim.Optimizer, LRSchedule]:
        s, opts = self.settings, self.opts
        groups = param_groups({"model": self.model, "loss": self.loss_fn}, s.weight_decay)
        if s.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, lr=s.lr, momentum=opts.momentum)
        else:
            optimizer = torch.optim.AdamW(groups, lr=s.lr)
        schedule = LRSchedule(s.scheduler, s.lr, self.total_steps, s.warmup_steps,
                              opts.step_milestones, opts.step_gamma)
        return optimizer, schedule

    def _loader(self, dataset: TrainDataset, plan: EpochPlan, start: int, epoch: int) -> torch.utils.data.DataLoader:
        gen = torch.Generator()
        gen.manual_seed(self.seed * 1_000_003 + epoch)
        workers = self.settings.workers
        return torch.utils.data.DataLoader(
            dataset,
            batch_sampler=plan.batches(start),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            generator=gen,  # keeps the global torch RNG untouched
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=False,
        )

    # ---------------------------------------------------------------- fit
    def fit(self, *, resume: bool, init: str | None,
            on_epoch_end: Callable[[int, nn.Module], Mapping[str, Any] | None] | None,
            progress: bool) -> TrainOutcome:
        model, loss_fn = self.model, self.loss_fn
        precision = Precision.for_device(self.device, self.opts)
        precision.place(model)
        loss_fn.to(self.device)
        scaler = precision.scaler()
        optimizer, schedule = self._optimizer()
        state = TrainState()
        saver = Checkpointer(self.workdir, model=model, loss_fn=loss_fn, optimizer=optimizer, scaler=scaler,
                             schedule=schedule, plan_key=self.plan_key, settings=self.settings,
                             backbone_spec=self.backbone_spec, ranks=self.ranks,
                             sharded=bool(getattr(loss_fn, "sharded", False)))
        saver.restore_or_init(state, resume=resume, init=init, device=self.device)
        transform = ImageTransform(_input_size(model, self.backbone_spec), self.backbone_spec.mean,
                                   self.backbone_spec.std)
        dataset = TrainDataset(self.train_set, transform)
        model.train()
        loss_fn.train()
        step_fn = StepFunction(model, loss_fn, optimizer, scaler, precision, self.settings, self.ranks,
                               compile_model=bool(getattr(self.opts, "compile", False)))
        bar = _progress_bar(progress, self.total_steps, state.step)
        try:
            self.tracker = open_training_loggers(
                self.settings, self.workdir, resumed_from=state.resumed_from, main=self.ranks.main,
                params={"engine": "torch", "backbone": getattr(self.backbone_spec, "name", ""), "seed": self.seed,
                        "sampler": self.sampler, "world": self.ranks.world, "total_steps": self.total_steps})
            step_fn.measure_grad_norm = self.tracker.active
            stopped_by = self._epochs(state, step_fn, schedule, saver, dataset, bar, on_epoch_end)
            if saver.needs_final_save(state):
                saver.save(state, state.epoch, state.position)
        finally:
            if bar is not None:
                bar.close()
            # Tear the DDP wrappers down now, before the runner destroys the
            # process group (gloo otherwise aborts at exit now and then).
            step_fn.close()
            self.tracker.close()
        if stopped_by == "time_budget" and self.ranks.main:
            _announce(f"training stopped by the time budget of {self.settings.time_budget:g} s at step "
                      f"{state.step} of {self.total_steps}; the results are of this partly trained model")
        model.eval()
        loss_fn.eval()
        return TrainOutcome(
            model=model, loss_fn=loss_fn, history=state.history, steps=state.step, epochs_done=state.epoch,
            checkpoint=saver.last, resumed_from_step=state.resumed_from, wall_s=time.monotonic() - self.t_start,
            device=str(self.device), stopped_by=stopped_by, init=state.init_report,
        )

    def _epochs(self, state: TrainState, step_fn: StepFunction, schedule: LRSchedule, saver: Checkpointer,
                dataset: TrainDataset, bar, on_epoch_end) -> str:
        """Run epochs until a stop; returns what stopped training."""
        settings, total = self.settings, self.total_steps
        stopped_by = "epochs"
        while state.epoch < settings.epochs and stopped_by == "epochs":
            plan = plan_epoch(
                self.labels, batch_size=settings.batch_size, seed=self.seed, epoch=state.epoch,
                sampler=self.sampler, k=self.opts.pk_k, rank=self.ranks.rank, world=self.ranks.world,
            )
            if state.position < len(plan):
                stopped_by = self._steps(state, step_fn, schedule, saver,
                                         iter(self._loader(dataset, plan, state.position, state.epoch)),
                                         len(plan), bar)
            if stopped_by != "epochs":
                break
            # the epoch is complete
            state.epoch += 1
            state.position = 0
            if on_epoch_end is not None:
                metrics = on_epoch_end(state.epoch, self.model) or {}
                state.history["eval"].append({"epoch": state.epoch, "step": state.step, **_plain(dict(metrics))})
                self.tracker.epoch_end(state.step, metrics)
                self.model.train()
                self.loss_fn.train()
            saver.save(state, state.epoch, 0)
            if state.step >= total and state.epoch < settings.epochs:
                stopped_by = "max_steps"
        return stopped_by

    def _steps(self, state: TrainState, step_fn: StepFunction, schedule: LRSchedule, saver: Checkpointer,
               batches: Iterator, n_batches: int, bar) -> str:
        """The steps of one epoch from ``state.position``; "epochs" when it ran to its end."""
        settings, total, history = self.settings, self.total_steps, state.history
        t_prev = time.perf_counter()
        while state.position < n_batches:
            if state.step >= total:
                return "max_steps"
            lr = schedule.lr(state.step)
            done = step_fn(batches, lr, state.step)
            if done is None:
                break
            loss_v, acc, n = done
            state.step += 1
            state.position += 1
            now = time.perf_counter()
            ips = n * self.ranks.world / max(now - t_prev, 1e-9)
            t_prev = now
            for k, v in (("step", state.step), ("epoch", state.epoch + 1), ("loss", loss_v),
                         ("lr", lr), ("accuracy", acc), ("img_per_s", ips)):
                history[k].append(v)
            self.tracker.train_step(state.step, loss=loss_v, lr=lr, img_per_s=ips, grad_norm=step_fn.grad_norm,
                                    accuracy=acc)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=state.epoch + 1, loss=f"{loss_v:.4f}", lr=f"{lr:.3g}",
                                img_s=f"{ips:.1f}", refresh=False)
            if state.step % settings.checkpoint_every == 0:
                saver.save(state, state.epoch, state.position)
            budget = settings.time_budget
            if budget is not None and self.ranks.any(time.monotonic() - self.t_start >= budget, self.device):
                return "time_budget"
            if state.step >= total and state.position < n_batches:
                return "max_steps"
        return "epochs"


# ----------------------------------------------------------------- helpers
def _clip_sharded(params: Sequence[nn.Parameter], sharded: Sequence[nn.Parameter], max_norm: float) -> torch.Tensor:
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
    return total


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


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train", dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


def _announce(message: str) -> None:
    """One line on the console (above a progress bar, if one is showing)."""
    try:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a core dependency
        print(message, file=sys.stderr, flush=True)


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
