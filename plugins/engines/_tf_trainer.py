"""The tf engine's training loop, in the same parts as the torch engine's.

* :func:`batches` — the epoch's batches as a ``tf.data`` pipeline over any
  :class:`harness.types.ImageSet` (a generic generator path, prefetched in a
  background thread); the order is the torch engine's seeded
  :func:`._data.plan_epoch`, so both engines see the same images, flipped the
  same way, in the same order;
* :class:`TFOptimizer` — SGD with torch's momentum rule (``buf = mu buf + g``,
  ``p -= lr buf``, L2 decay added to the gradient) or AdamW (decoupled decay),
  decay only on kernels and class matrices (not on BatchNorm, biases or
  PReLU slopes), gradient clipping by the global norm as
  ``torch.nn.utils.clip_grad_norm_``;
* :class:`TFCheckpointer` — ``workdir/checkpoints/last.tf.npz`` written
  atomically (backbone, loss, optimizer slots, step, epoch, position,
  history) and restored on resume after checking it is the same plan;
* :class:`TFTrainer` — epochs of steps with the torch trainer's stops
  (epochs, ``max_steps``, ``time_budget``), its schedule
  (:class:`._trainer.LRSchedule`: warm-up + cosine / step / constant), saves
  every ``checkpoint_every`` steps and ``on_epoch_end`` evaluations, and a
  progress bar with img/s and ETA.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from harness.errors import ConfigError, DataError, HarnessError

from ._data import ImageTransform, TrainOutcome, plan_epoch, steps_per_epoch

__all__ = ["TFCheckpointer", "TFOptimizer", "TFTrainer", "batches", "decays"]

_HISTORY_KEYS = ("step", "epoch", "loss", "lr", "accuracy", "img_per_s")
_NO_DECAY = ("gamma", "beta", "bias", "alpha", "moving_mean", "moving_variance")
CHECKPOINT_NAME = "last.tf.npz"


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    position: int = 0
    history: dict[str, Any] = field(default_factory=lambda: {**{k: [] for k in _HISTORY_KEYS}, "eval": []})
    resumed_from: int | None = None


def _var_name(var: tf.Variable) -> str:
    return str(getattr(var, "path", None) or var.name).split(":")[0]


def decays(var: tf.Variable) -> bool:
    """Weight decay applies to kernels and class matrices, not to norms, biases or PReLU slopes."""
    return _var_name(var).rsplit("/", 1)[-1] not in _NO_DECAY


# --------------------------------------------------------------------- data
def to_hwc(transform: ImageTransform, image: np.ndarray, flip: bool = False) -> np.ndarray:
    """The torch engine's transform (resize, flip, normalise) in channels-last layout."""
    return np.ascontiguousarray(transform(image, flip).transpose(1, 2, 0))


def batches(images, plan, start: int, transform: ImageTransform) -> tf.data.Dataset:
    """``(x, y)`` batches of ``plan`` from batch ``start`` on, decoded in a background thread."""
    h, w = transform.height, transform.width
    labels = np.asarray(images.labels)

    def gen():
        for idx, flp in zip(plan.indices[start:], plan.flips[start:]):
            xs = []
            for i, f in zip(idx, flp):
                try:
                    img = images.load(int(i))
                except Exception as exc:
                    key = images.keys[int(i)] if hasattr(images, "keys") else int(i)
                    raise DataError(f"cannot load training image {key!r}: {exc}") from exc
                xs.append(to_hwc(transform, img, bool(f)))
            yield np.stack(xs), labels[idx].astype(np.int32)

    sig = (tf.TensorSpec((None, h, w, 3), tf.float32), tf.TensorSpec((None,), tf.int32))
    return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(2)


# ---------------------------------------------------------------- optimizer
class TFOptimizer:
    """SGD (torch's momentum rule) or AdamW over ``variables``, with global-norm clipping."""

    def __init__(self, variables: list[tf.Variable], *, kind: str, weight_decay: float, momentum: float,
                 grad_clip: float | None, betas=(0.9, 0.999), eps: float = 1e-8):
        if not variables:
            raise ConfigError("nothing to train: the model and loss have no trainable variables")
        self.variables, self.kind, self.wd = variables, kind, float(weight_decay)
        self.momentum, self.clip, self.betas, self.eps = float(momentum), grad_clip, betas, eps
        self.decay = [decays(v) for v in variables]
        zeros = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.slots = {"buf": zeros}
        if kind == "adamw":
            self.slots["v"] = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0.0, trainable=False, dtype=tf.float64)  # bias corrections need double

    def slot_values(self) -> list[np.ndarray]:
        return [s.numpy() for name in sorted(self.slots) for s in self.slots[name]] + [self.t.numpy()]

    def load_slot_values(self, values: list[np.ndarray]) -> None:
        flat = [s for name in sorted(self.slots) for s in self.slots[name]] + [self.t]
        if len(values) != len(flat):
            raise DataError(f"checkpoint holds {len(values)} optimizer values, this optimizer {len(flat)}")
        for var, val in zip(flat, values):
            var.assign(val)

    def clip_gradients(self, grads: list[tf.Tensor]) -> tuple[list[tf.Tensor], tf.Tensor]:
        norm = tf.linalg.global_norm(grads)
        if self.clip is None or self.clip <= 0:
            return grads, norm
        coef = tf.minimum(self.clip / (norm + 1e-6), 1.0)
        return [g * coef for g in grads], norm

    def apply(self, grads: list[tf.Tensor], lr: tf.Tensor) -> None:
        self.t.assign_add(1.0)
        for i, (var, g) in enumerate(zip(self.variables, grads)):
            g = tf.cast(g, var.dtype)
            buf = self.slots["buf"][i]
            if self.kind == "sgd":
                if self.decay[i] and self.wd:
                    g = g + self.wd * var
                buf.assign(self.momentum * buf + g)
                var.assign_sub(lr * buf)
                continue
            b1, b2 = self.betas
            if self.decay[i] and self.wd:
                var.assign(var * (1.0 - lr * self.wd))
            v = self.slots["v"][i]
            buf.assign(b1 * buf + (1.0 - b1) * g)
            v.assign(b2 * v + (1.0 - b2) * g * g)
            # torch's AdamW: lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), corrections in double
            step_size = tf.cast(tf.cast(lr, tf.float64) / (1.0 - b1 ** self.t), var.dtype)
            bc2_sqrt = tf.cast(tf.sqrt(1.0 - b2 ** self.t), var.dtype)
            var.assign_sub(step_size * buf / (tf.sqrt(v) / bc2_sqrt + self.eps))


# -------------------------------------------------------------- checkpoints
class TFCheckpointer:
    """``workdir/checkpoints/last.tf.npz``: everything a resume needs, written atomically."""

    def __init__(self, workdir: Path, *, model, loss_fn, optimizer: TFOptimizer, plan_key: Mapping[str, Any]):
        self.dir = Path(workdir) / "checkpoints"
        self.last = self.dir / CHECKPOINT_NAME
        self.model, self.loss_fn, self.optimizer, self.plan_key = model, loss_fn, optimizer, dict(plan_key)

    def save(self, state: _State) -> None:
        from harness.atomic import atomic_output

        arrays = {f"model_{i}": w.numpy() for i, w in enumerate(self.model.weights)}
        arrays.update({f"loss_{i}": v.numpy() for i, v in enumerate(self.loss_fn.variables)})
        arrays.update({f"opt_{i}": v for i, v in enumerate(self.optimizer.slot_values())})
        meta = {"format": "facebench-tf-checkpoint", "version": 1, "plan": self.plan_key, "step": state.step,
                "epoch": state.epoch, "position": state.position, "history": state.history}
        arrays["meta"] = np.frombuffer(json.dumps(meta, default=float).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.last, "wb") as fh:
            fh.write(buf.getvalue())

    def restore(self, state: _State) -> bool:
        """Load ``last.tf.npz`` into the model, loss, optimizer and ``state``; False when there is none."""
        if not self.last.is_file():
            return False
        data = read_checkpoint(self.last)
        meta = data["meta"]
        if meta.get("plan") != self.plan_key:
            raise ConfigError(f"{self.last} was written for another training plan ({meta.get('plan')}, now "
                              f"{self.plan_key}); rerun with --no-resume or --force")
        _assign_all(self.model.weights, data["model"], f"{self.last} (backbone)")
        _assign_all(self.loss_fn.variables, data["loss"], f"{self.last} (loss)")
        self.optimizer.load_slot_values(data["opt"])
        state.step, state.epoch, state.position = int(meta["step"]), int(meta["epoch"]), int(meta["position"])
        state.history = meta["history"]
        state.resumed_from = state.step
        return True


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A tf-engine checkpoint as {"meta", "model", "loss", "opt"}; DataError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a tf-engine checkpoint (.tf.npz): {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != "facebench-tf-checkpoint":
        raise DataError(f"{path} is not a tf-engine checkpoint (.tf.npz)")
    out: dict[str, Any] = {"meta": meta}
    for part in ("model", "loss", "opt"):
        keys = sorted((k for k in arrays if k.startswith(part + "_")), key=lambda k: int(k.split("_")[1]))
        out[part] = [arrays[k] for k in keys]
    return out


def _assign_all(variables, values: list[np.ndarray], what: str) -> None:
    if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise DataError(f"{what} does not fit this network ({len(values)} arrays for {len(variables)} variables)")
    for var, val in zip(variables, values):
        var.assign(val)


# ------------------------------------------------------------------ trainer
class TFTrainer:
    """One call of :meth:`TFEngine.train`."""

    def __init__(self, engine, model, loss_fn, train_set, *, backbone_spec, settings, workdir, seed: int,
                 sampler: str) -> None:
        from ._trainer import LRSchedule

        self.t_start = time.monotonic()
        self.engine, self.opts = engine, engine.options
        self.model, self.loss_fn, self.train_set = model, loss_fn, train_set
        self.spec, self.settings, self.seed, self.sampler = backbone_spec, settings, int(seed), sampler
        self.workdir = Path(workdir)
        self.labels = np.asarray(train_set.labels)
        if len(self.labels) == 0 or (self.labels < 0).any():
            raise DataError("the training set is empty or has images without an identity label (-1)")
        per_epoch = steps_per_epoch(len(self.labels), settings.batch_size)
        if per_epoch == 0:
            raise DataError(f"the training set has {len(self.labels)} images, fewer than one batch of "
                            f"{settings.batch_size}: lower training.batch_size or train on more images")
        self.total = settings.epochs * per_epoch if settings.max_steps is None else \
            min(settings.epochs * per_epoch, settings.max_steps)
        self.schedule = LRSchedule(settings.scheduler, settings.lr, self.total, settings.warmup_steps,
                                   self.opts.step_milestones, self.opts.step_gamma)
        self.variables = list(model.trainable_variables) + list(loss_fn.trainable_variables)
        self.optimizer = TFOptimizer(self.variables, kind=settings.optimizer, weight_decay=settings.weight_decay,
                                     momentum=self.opts.momentum, grad_clip=settings.grad_clip)
        self.plan_key = {"num_images": len(self.labels), "batch_size": settings.batch_size, "seed": self.seed,
                         "sampler": sampler, "pk_k": self.opts.pk_k if sampler == "pk" else None, "world": 1}
        self.saver = TFCheckpointer(self.workdir, model=model, loss_fn=loss_fn, optimizer=self.optimizer,
                                    plan_key=self.plan_key)
        self.transform = ImageTransform(tuple(backbone_spec.input_size), backbone_spec.mean, backbone_spec.std)
        self.step_fn = tf.function(self._step, reduce_retracing=True)

    def _step(self, x, y, lr):
        with tf.GradientTape() as tape:
            emb = tf.cast(self.model(x, training=True), tf.float32)
            loss = self.loss_fn(emb, y, training=True)
        grads = tape.gradient(loss, self.variables)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, self.variables)]
        grads, norm = self.optimizer.clip_gradients(grads)
        finite = tf.math.is_finite(loss)
        if finite:
            self.optimizer.apply(grads, lr)
        acc = -1.0
        if getattr(self.loss_fn, "has_classifier", False):
            pred = tf.argmax(self.loss_fn.logits(emb), axis=1, output_type=tf.int32)
            acc = tf.reduce_mean(tf.cast(tf.equal(pred, y), tf.float32))
        return loss, acc, norm

    def fit(self, *, resume: bool, on_epoch_end: Callable | None, progress: bool) -> TrainOutcome:
        state = _State()
        if resume:
            self.saver.restore(state)
        bar = _progress_bar(progress, self.total, state.step)
        try:
            stopped_by = self._epochs(state, bar, on_epoch_end)
            if stopped_by != "epochs" or not self.saver.last.is_file():
                self.saver.save(state)
        finally:
            if bar is not None:
                bar.close()
        if stopped_by == "time_budget":
            _announce(f"training stopped by the time budget of {self.settings.time_budget:g} s at step "
                      f"{state.step} of {self.total}; the results are of this partly trained model")
        return TrainOutcome(model=self.model, loss_fn=self.loss_fn, history=state.history, steps=state.step,
                              epochs_done=state.epoch, checkpoint=self.saver.last, resumed_from_step=state.resumed_from,
                              wall_s=time.monotonic() - self.t_start, device=self.engine.device_name(self.settings.device),
                              stopped_by=stopped_by)

    def _epochs(self, state: _State, bar, on_epoch_end) -> str:
        settings, stopped_by = self.settings, "epochs"
        while state.epoch < settings.epochs and stopped_by == "epochs":
            plan = plan_epoch(self.labels, batch_size=settings.batch_size, seed=self.seed, epoch=state.epoch,
                              sampler=self.sampler, k=self.opts.pk_k)
            if state.position < len(plan):
                stopped_by = self._steps(state, batches(self.train_set, plan, state.position, self.transform),
                                         len(plan), bar)
            if stopped_by != "epochs":
                break
            state.epoch += 1
            state.position = 0
            if on_epoch_end is not None:
                metrics = on_epoch_end(state.epoch, self.model) or {}
                state.history["eval"].append({"epoch": state.epoch, "step": state.step,
                                              **{k: _plain(v) for k, v in dict(metrics).items()}})
            self.saver.save(state)
            if state.step >= self.total and state.epoch < settings.epochs:
                stopped_by = "max_steps"
        return stopped_by

    def _steps(self, state: _State, data: tf.data.Dataset, n_batches: int, bar) -> str:
        settings, history = self.settings, state.history
        t_prev = time.perf_counter()
        for x, y in data:
            if state.step >= self.total:
                return "max_steps"
            lr = self.schedule.lr(state.step)
            loss, acc, _norm = self.step_fn(x, y, tf.constant(lr, tf.float32))
            loss_v = float(loss)
            if not math.isfinite(loss_v):
                raise HarnessError(f"training diverged: loss is {loss_v} at step {state.step + 1} (lr {lr:.3g}); "
                                   "lower training.lr or raise warmup_steps")
            state.step += 1
            state.position += 1
            now = time.perf_counter()
            ips = int(x.shape[0]) / max(now - t_prev, 1e-9)
            t_prev = now
            acc_v = float(acc)
            for k, v in (("step", state.step), ("epoch", state.epoch + 1), ("loss", loss_v), ("lr", lr),
                         ("accuracy", acc_v if acc_v >= 0 else None), ("img_per_s", ips)):
                history[k].append(v)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=state.epoch + 1, loss=f"{loss_v:.4f}", lr=f"{lr:.3g}", img_s=f"{ips:.1f}",
                                refresh=False)
            if state.step % settings.checkpoint_every == 0:
                self.saver.save(state)
            if settings.time_budget is not None and time.monotonic() - self.t_start >= settings.time_budget:
                return "time_budget"
            if state.step >= self.total and state.position < n_batches:
                return "max_steps"
        return "epochs"


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train (tf)", dynamic_ncols=True, file=sys.stderr,
                smoothing=0.1)


def _announce(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
