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
  progress bar with img/s and ETA;
* :func:`precision_policy` / :func:`precision_scope` — Keras mixed precision
  (``mixed_bfloat16``, or ``mixed_float16`` on a GPU with :class:`LossScale`'s
  dynamic loss scaling); variables, the embedding head and the loss stay
  float32;
* :func:`replica_devices` — several GPUs (or logical CPU devices) train with
  ``tf.distribute.MirroredStrategy``: the trainer rebuilds the model, loss and
  optimizer under the strategy's scope and splits each global batch.

A checkpoint holds the dropout layers' random state too, so a run killed and
resumed in a new process ends with the weights of one never interrupted.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from harness.errors import ConfigError, DataError, HarnessError
from harness.run_loggers import RunLoggers, open_training_loggers

from ._data import ImageTransform, TrainOutcome, plan_epoch, steps_per_epoch

__all__ = ["LossScale", "TFCheckpointer", "TFOptimizer", "TFTrainer", "batches", "decays", "embedding_head",
           "mirror_model", "precision_policy", "precision_scope", "replica_devices", "rng_variables"]

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


def rng_variables(model) -> list:
    """The model's random state that is not a weight (its dropout layers' seed generators)."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


# ---------------------------------------------------------------- precision
def precision_policy(options, device: str) -> str:
    """The Keras dtype policy ``options`` ask for on ``device`` (``/CPU:0``, ``/GPU:1``).

    ``precision: bf16`` gives ``mixed_bfloat16`` anywhere, ``auto`` (the
    default) where bf16 trains faster than float32 (a GPU of compute
    capability 8 or more, a CPU with AMX: ``amx_bf16``); otherwise ``amp`` gives
    ``mixed_float16`` on a GPU and ``cpu_bf16`` ``mixed_bfloat16`` on the CPU,
    and the rest is ``float32`` — the torch engine's choices.
    """
    gpu = "GPU" in str(device).upper()
    choice = getattr(options, "precision", "fp32")
    if choice == "bf16" or (choice == "auto" and _bf16_fast(device)):
        return "mixed_bfloat16"
    if gpu and getattr(options, "amp", False):
        return "mixed_float16"
    if not gpu and getattr(options, "cpu_bf16", False):
        return "mixed_bfloat16"
    return "float32"


def _bf16_fast(device: str) -> bool:
    if "GPU" in str(device).upper():
        index = str(device).rsplit(":", 1)[-1]
        gpus = tf.config.list_physical_devices("GPU")
        n = int(index) if index.isdigit() else 0
        if n >= len(gpus):
            return False
        capability = tf.config.experimental.get_device_details(gpus[n]).get("compute_capability") or (0, 0)
        return tuple(capability) >= (8, 0)
    from ._trainer import cpu_bf16_fast

    return cpu_bf16_fast(mkldnn=True)  # TensorFlow's x86 CPU kernels are oneDNN's


def embedding_head(model) -> int:
    """Index in ``model.layers`` of the layer that makes the embedding: the last one with a kernel
    (what follows it, e.g. a BatchNorm or a Flatten, belongs to the head as well)."""
    with_kernel = [i for i, layer in enumerate(model.layers)
                   if any(_var_name(w).endswith("kernel") for w in layer.weights)]
    return with_kernel[-1] if with_kernel else len(model.layers) - 1


@contextlib.contextmanager
def precision_scope(model, policy: str) -> Iterator[Any]:
    """Inside, ``model``'s layers compute in ``policy``'s dtype (their variables stay float32) and the
    embedding head (:func:`embedding_head` on) in float32; the layers' own policies return on exit."""
    if policy == "float32":
        yield model
        return
    layers = list(model.layers)
    head = embedding_head(model)
    saved = [layer.dtype_policy for layer in layers]
    try:
        for i, layer in enumerate(layers):
            layer.dtype_policy = policy if i < head else "float32"
        yield model
    finally:
        for layer, before in zip(layers, saved):
            layer.dtype_policy = before


class LossScale:
    """Dynamic loss scaling for ``mixed_float16``, the rule of Keras' ``LossScaleOptimizer``.

    The loss is multiplied by ``scale`` (2^15 at first) before the gradients
    are taken and they are divided by it again; a step whose gradients are not
    finite is skipped and halves the scale (never below 1), and
    ``growth_interval`` finite steps in a row double it.  Disabled (outside
    float16) it changes nothing.  Its two variables are checkpointed.
    """

    def __init__(self, enabled: bool, *, initial: float = 2.0 ** 15, growth_interval: int = 2000) -> None:
        self.enabled, self.growth_interval = bool(enabled), int(growth_interval)
        self.scale = tf.Variable(float(initial) if enabled else 1.0, trainable=False, dtype=tf.float32,
                                 name="loss_scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps")

    def scaled(self, loss: tf.Tensor) -> tf.Tensor:
        return loss * self.scale if self.enabled else loss

    def unscale(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        if not self.enabled:
            return grads
        inv = 1.0 / self.scale
        return [g * tf.cast(inv, g.dtype) for g in grads]

    @staticmethod
    def all_finite(grads: list[tf.Tensor]) -> tf.Tensor:
        return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in grads]))

    def update(self, grads_finite: tf.Tensor) -> None:
        """After a step: grow the scale after ``growth_interval`` good steps, halve it on overflow."""
        if not self.enabled:
            return
        if grads_finite:
            self.good_steps.assign_add(1)
            if self.good_steps >= self.growth_interval:
                self.scale.assign(self.scale * 2.0)
                self.good_steps.assign(0)
        else:
            self.scale.assign(tf.maximum(self.scale * 0.5, 1.0))
            self.good_steps.assign(0)

    def values(self) -> list[np.ndarray]:
        return [self.scale.numpy(), self.good_steps.numpy()] if self.enabled else []

    def load_values(self, values: list[np.ndarray]) -> None:
        if self.enabled and values:
            _assign_all([self.scale, self.good_steps], values, "checkpoint (loss scale)")


# ------------------------------------------------------------ several devices
def replica_devices(options, device: str) -> list[str]:
    """The devices one step is mirrored over: with ``mirrored`` and device ``auto``, every GPU when
    TensorFlow sees several, else every logical CPU device when there are several (a test configures
    two); otherwise none (train on one device)."""
    if not getattr(options, "mirrored", False) or str(device or "auto").lower() != "auto":
        return []
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return [d.name for d in gpus]
    cpus = [] if gpus else tf.config.list_logical_devices("CPU")
    return [d.name for d in cpus] if len(cpus) > 1 else []


def mirror_model(model):
    """A twin of the Keras ``model`` whose variables are made in the current scope (a strategy's),
    holding ``model``'s values, trainable flags and random state."""
    twin = keras.models.clone_model(model)
    for src, dst in zip(model.weights, twin.weights, strict=True):
        dst.trainable = src.trainable
    copy_variables(model.variables, twin.variables, f"{model.name} (replica twin)")
    return twin


def copy_variables(src: list, dst: list, what: str) -> None:
    """Assign each of ``src``'s values to ``dst`` (same order and shapes)."""
    _assign_all(dst, [np.asarray(v.numpy()) for v in src], what)


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
    """``workdir/checkpoints/last.tf.npz``: everything a resume needs, written atomically — the
    backbone's weights and random state (dropout), the loss's variables, the optimizer's slots, the
    loss scale, and where in the epoch plan the run stands."""

    def __init__(self, workdir: Path, *, model, loss_fn, optimizer: TFOptimizer, plan_key: Mapping[str, Any],
                 scaler: LossScale | None = None):
        self.dir = Path(workdir) / "checkpoints"
        self.last = self.dir / CHECKPOINT_NAME
        self.model, self.loss_fn, self.optimizer, self.plan_key = model, loss_fn, optimizer, dict(plan_key)
        self.scaler = scaler

    def save(self, state: _State) -> None:
        from harness.atomic import atomic_output

        arrays = {f"model_{i}": w.numpy() for i, w in enumerate(self.model.weights)}
        arrays.update({f"loss_{i}": v.numpy() for i, v in enumerate(self.loss_fn.variables)})
        arrays.update({f"opt_{i}": v for i, v in enumerate(self.optimizer.slot_values())})
        arrays.update({f"rng_{i}": v.numpy() for i, v in enumerate(rng_variables(self.model))})
        if self.scaler is not None:
            arrays.update({f"scale_{i}": v for i, v in enumerate(self.scaler.values())})
        meta = {"format": "facebench-tf-checkpoint", "version": 2, "plan": self.plan_key, "step": state.step,
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
        if data["rng"]:  # version 1 checkpoints have none: dropout then starts from its first state
            _assign_all(rng_variables(self.model), data["rng"], f"{self.last} (random state)")
        if self.scaler is not None:
            self.scaler.load_values(data["scale"])
        state.step, state.epoch, state.position = int(meta["step"]), int(meta["epoch"]), int(meta["position"])
        state.history = meta["history"]
        state.resumed_from = state.step
        return True


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A tf-engine checkpoint as {"meta", "model", "loss", "opt", "rng", "scale"}; DataError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path} is not a tf-engine checkpoint (.tf.npz): {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != "facebench-tf-checkpoint":
        raise DataError(f"{path} is not a tf-engine checkpoint (.tf.npz)")
    out: dict[str, Any] = {"meta": meta}
    for part in ("model", "loss", "opt", "rng", "scale"):
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
    """One call of :meth:`TFEngine.train`.

    ``model`` and ``loss_fn`` (the caller's) are trained in place on one
    device; with several (:func:`replica_devices`) ``train_model`` /
    ``train_loss`` are their twins made under ``strategy``'s scope, copied back
    into them at each epoch's end and when training ends.
    """

    def __init__(self, engine, model, loss_fn, train_set, *, backbone_spec, settings, workdir, seed: int,
                 sampler: str) -> None:
        from ._trainer import LRSchedule

        self.t_start = time.monotonic()
        self.engine, self.opts = engine, engine.options
        self.model, self.loss_fn, self.train_set = model, loss_fn, train_set
        self.spec, self.settings, self.seed, self.sampler = backbone_spec, settings, int(seed), sampler
        self.workdir = Path(workdir)
        self.tracker = RunLoggers()  # opened by fit (settings.log: TensorBoard, MLflow)
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
        self.policy = precision_policy(self.opts, engine.device_name(settings.device))
        devices = replica_devices(self.opts, settings.device)
        self.strategy = tf.distribute.MirroredStrategy(devices) if devices else None
        if self.strategy is not None and settings.batch_size < len(devices):
            raise ConfigError(f"training.batch_size={settings.batch_size} cannot be split over {len(devices)} "
                              f"devices; use a batch of at least {len(devices)} or -o tf.mirrored=false")
        self._build_training_state(settings)
        self.plan_key = {"num_images": len(self.labels), "batch_size": settings.batch_size, "seed": self.seed,
                         "sampler": sampler, "pk_k": self.opts.pk_k if sampler == "pk" else None, "world": 1}
        if self.policy != "float32":
            self.plan_key["precision"] = self.policy
        if self.strategy is not None:
            self.plan_key["replicas"] = len(devices)
        self.saver = TFCheckpointer(self.workdir, model=self.train_model, loss_fn=self.train_loss,
                                    optimizer=self.optimizer, plan_key=self.plan_key, scaler=self.scaler)
        self.transform = ImageTransform(tuple(backbone_spec.input_size), backbone_spec.mean, backbone_spec.std)
        self.step_fn = tf.function(self._step if self.strategy is None else self._mirrored_step,
                                   reduce_retracing=True)

    def _build_training_state(self, settings) -> None:
        """The trained model and loss (twins under the strategy's scope, if any), optimizer, loss scale."""
        scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
        with scope:
            if self.strategy is None:
                self.train_model, self.train_loss = self.model, self.loss_fn
            else:
                from ._tf_losses import clone_tf_loss

                self.train_model, self.train_loss = mirror_model(self.model), clone_tf_loss(self.loss_fn)
            self.variables = list(self.train_model.trainable_variables) + list(self.train_loss.trainable_variables)
            self.optimizer = TFOptimizer(self.variables, kind=settings.optimizer,
                                         weight_decay=settings.weight_decay, momentum=self.opts.momentum,
                                         grad_clip=settings.grad_clip)
            self.scaler = LossScale(self.policy == "mixed_float16")

    def _sync_back(self) -> None:
        """Copy the replicas' values into the caller's model and loss (nothing to do on one device)."""
        if self.strategy is not None:
            copy_variables(self.train_model.variables, self.model.variables, f"{self.model.name} (trained)")
            copy_variables(self.train_loss.variables, self.loss_fn.variables, "loss (trained)")

    def _grads(self, x, y, n):
        """This batch's loss weighted by its share of the global batch of ``n`` images, the gradients
        of that (through the loss scale) and the number classified right (-1: no classifier)."""
        with tf.GradientTape() as tape:
            emb = tf.cast(self.train_model(x, training=True), tf.float32)
            loss = self.train_loss(emb, y, training=True) * (tf.cast(tf.shape(y)[0], tf.float32) / n)
            scaled = self.scaler.scaled(loss)
        grads = tape.gradient(scaled, self.variables)
        grads = self.scaler.unscale([tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                                     for g, v in zip(grads, self.variables)])
        correct = tf.constant(-1.0)
        if getattr(self.train_loss, "has_classifier", False):
            pred = tf.argmax(self.train_loss.logits(emb), axis=1, output_type=tf.int32)
            correct = tf.reduce_sum(tf.cast(tf.equal(pred, y), tf.float32))
        return loss, grads, correct

    def _apply(self, loss, grads, correct, n, lr):
        """Clip and apply the gradients of the whole batch (skipped when not finite)."""
        grads_finite = self.scaler.all_finite(grads) if self.scaler.enabled else tf.constant(True)
        grads, norm = self.optimizer.clip_gradients(grads)
        if tf.logical_and(tf.math.is_finite(loss), grads_finite):
            self.optimizer.apply(grads, lr)
        self.scaler.update(grads_finite)
        acc = correct / n if getattr(self.train_loss, "has_classifier", False) else tf.constant(-1.0)
        return loss, acc, norm

    def _step(self, x, y, lr, n):
        return self._apply(*self._grads(x, y, n), n, lr)

    def _mirrored_step(self, x, y, lr, n):
        """Each replica's part of the batch forward and backward; the sums applied once to the mirrored
        variables (in cross-replica context, so every copy gets the same update)."""
        strategy = self.strategy
        loss, grads, correct = strategy.run(self._grads, args=(x, y, n))

        def total(value):
            return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

        return self._apply(total(loss), [total(g) for g in grads], total(correct), n, lr)

    def _split(self, t: tf.Tensor):
        """The global batch ``t`` as contiguous per-replica slices, each on its replica's device."""
        strategy = self.strategy
        replicas, n = strategy.num_replicas_in_sync, int(t.shape[0])
        devices = strategy.extended.worker_devices

        def part(ctx):
            i = ctx.replica_id_in_sync_group
            with tf.device(devices[i]):
                return tf.identity(t[i * n // replicas:(i + 1) * n // replicas])

        return strategy.experimental_distribute_values_from_function(part)

    def _run_step(self, x: tf.Tensor, y: tf.Tensor, lr: float):
        n = tf.constant(float(x.shape[0]), tf.float32)
        lr_t = tf.constant(lr, tf.float32)
        if self.strategy is None:
            return self.step_fn(x, y, lr_t, n)
        return self.step_fn(self._split(x), self._split(y), lr_t, n)

    def fit(self, *, resume: bool, on_epoch_end: Callable | None, progress: bool) -> TrainOutcome:
        state = _State()
        if resume:
            self.saver.restore(state)
        bar = _progress_bar(progress, self.total, state.step)
        try:
            self.tracker = open_training_loggers(self.settings, self.workdir, resumed_from=state.resumed_from, params={
                "engine": "tf", "backbone": getattr(self.spec, "name", ""), "seed": self.seed, "sampler": self.sampler,
                "total_steps": self.total})
            with precision_scope(self.train_model, self.policy):
                stopped_by = self._epochs(state, bar, on_epoch_end)
            if stopped_by != "epochs" or not self.saver.last.is_file():
                self.saver.save(state)
        finally:
            if bar is not None:
                bar.close()
            self.tracker.close()
        self._sync_back()
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
                self._sync_back()
                metrics = on_epoch_end(state.epoch, self.model) or {}
                state.history["eval"].append({"epoch": state.epoch, "step": state.step,
                                              **{k: _plain(v) for k, v in dict(metrics).items()}})
                self.tracker.epoch_end(state.step, metrics)
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
            loss, acc, _norm = self._run_step(x, y, lr)
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
            self.tracker.train_step(state.step, loss=loss_v, lr=lr, img_per_s=ips, grad_norm=_norm,
                                    accuracy=acc_v if acc_v >= 0 else None)
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
