"""The TensorFlow engine: the same backbones and losses, trained and run in Keras.

Chosen with ``harness run --engine tf`` (torch stays the default).  Components
keep their one set of names and options: the recognition task builds each
backbone and loss through its spec as always, and hands it to
:meth:`TFEngine.adapt`, which builds the Keras / TensorFlow twin from the same
options (:mod:`._tf_backbones`, :mod:`._tf_losses`) and copies the weights
across.  So a tf run starts from exactly the weights a torch run of the same
seed starts from, and the two engines differ only in how they train.

::

    engine = build(options)
    engine.seed_everything(seed)
    model = engine.adapt("backbone", "resnet20", opts, torch_model)
    loss = engine.adapt("loss", "am_softmax", loss_opts, torch_loss)
    outcome = engine.train(model, loss, train_set, backbone_spec=spec, settings=training,
                           workdir=run_dir, seed=seed)
    feats = engine.embed(outcome.model, images, backbone_spec=spec)

Training (:mod:`._tf_trainer`): the torch engine's seeded epoch plan,
SGD (torch's momentum rule) or AdamW with no decay on norms, biases and PReLU
slopes, warm-up + cosine / step / constant, gradient clipping, atomic
checkpoints with resume, ``max_steps`` and ``time_budget`` stops, a progress
bar with img/s and ETA, per-epoch verification through ``on_epoch_end``;
Keras mixed precision (``-o tf.precision=bf16``; ``mixed_float16`` with loss
scaling on a GPU), ``tf.distribute.MirroredStrategy`` over several GPUs (or
logical CPU devices), and the trained backbone written as a SavedModel to
``<run>/saved_model/`` (:meth:`TFEngine.export_saved_model`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from harness.errors import ConfigError

from .options import TFEngineOptions
from ._data import ImageTransform, TrainOutcome, embed_source
from ._tf_backbones import FLOPS_METHOD, build_keras_backbone, keras_flops, keras_param_count, transfer_weights
from ._tf_losses import build_tf_loss, transfer_loss
from ._tf_trainer import CHECKPOINT_NAME, TFTrainer, precision_policy, precision_scope, read_checkpoint, to_hwc

__all__ = ["TFEngine", "TrainOutcome", "build", "tfrecord_dataset"]


def build(options: TFEngineOptions | None = None) -> "TFEngine":
    """Factory named by the ``tf`` engine spec."""
    return TFEngine(options or TFEngineOptions())


def _set_threads(threads: int) -> None:
    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:  # TensorFlow already ran an op: the setting is fixed for this process
        pass


class TFEngine:
    """Trains a Keras backbone with a TensorFlow loss, and embeds images with it."""

    name = "tf"
    framework = "tensorflow"

    def __init__(self, options: TFEngineOptions | None = None) -> None:
        self.options = options or TFEngineOptions()
        _set_threads(self.options.threads)
        self._infer: dict[tuple[int, str], tuple[Any, Callable]] = {}

    # ------------------------------------------------------------- basics
    def device_name(self, device: str = "auto") -> str:
        """``auto``: the first GPU TensorFlow sees, else the CPU; ``cuda[:N]`` / ``gpu[:N]`` a GPU."""
        gpus = tf.config.list_physical_devices("GPU")
        if device in (None, "", "auto"):
            return "/GPU:0" if gpus else "/CPU:0"
        kind, _, index = str(device).lower().partition(":")
        if kind == "cpu":
            return "/CPU:0"
        if kind in ("cuda", "gpu") and (not index or index.isdigit()):
            n = int(index or 0)
            if n >= len(gpus):
                raise ConfigError(f"device {device!r} asked for, but TensorFlow sees {len(gpus)} GPU(s); "
                                  "use 'auto' or 'cpu'")
            return f"/GPU:{n}"
        raise ConfigError(f"device {device!r} is not a TensorFlow device ('auto', 'cpu', 'cuda', 'cuda:1')")

    def resolve_device(self, device: str = "auto") -> str:
        """The device as a run's manifest names it: ``cpu`` or ``cuda:N``."""
        name = self.device_name(device)
        return "cpu" if name.startswith("/CPU") else f"cuda:{name.rsplit(':', 1)[-1]}"

    def precision_label(self, device: str = "auto") -> str:
        """What :meth:`embed` computes in on ``device`` (the manifest's ``precision``): the Keras policy."""
        return precision_policy(self.options, self.device_name(device))

    def check_settings(self, settings, *, training: bool = True) -> None:
        """The device exists; ``init`` (when training) is a tf-engine checkpoint."""
        self.device_name(settings.device)
        if training and settings.init:
            read_checkpoint(Path(settings.init))

    def seed_everything(self, seed: int) -> None:
        """Seed Python, NumPy, TensorFlow (dropout) and torch: the components are built by their
        torch factories before :meth:`adapt`, so a seed gives the torch engine's initial weights."""
        seed = int(seed)
        random.seed(seed)
        np.random.seed(seed & 0xFFFFFFFF)
        keras.utils.set_random_seed(seed & 0xFFFFFFFF)
        if importlib.util.find_spec("torch") is not None:
            import torch

            torch.manual_seed(seed)
        if self.options.deterministic:
            tf.config.experimental.enable_op_determinism()

    # ----------------------------------------------------------- components
    def adapt(self, kind: str, name: str, options: Any, component: Any, **_kw: Any) -> Any:
        """The TensorFlow twin of ``component`` (built by its spec's factory), with its weights.

        :param kind: ``"backbone"`` or ``"loss"``.
        :param name: the component's spec name (``resnet20``, ``arcface``…).
        :param options: its options dataclass, as for the torch build.
        :raises ConfigError: the engine has no TensorFlow version of it.
        """
        if kind == "backbone":
            model = build_keras_backbone(name, options)
            transfer_weights(component, model)
            return model
        if kind == "loss":
            loss = build_tf_loss(name, options, embedding_size=component.embedding_size,
                                 num_classes=getattr(component, "num_classes", 2))
            transfer_loss(component, loss)
            return loss
        raise ConfigError(f"the tf engine runs backbones and losses, not a {kind}")

    @staticmethod
    def param_count(model) -> int:
        """Parameters as torch counts them (BatchNorm moving statistics excluded)."""
        return keras_param_count(model)

    @staticmethod
    def compute(model, input_size: Sequence[int] | None = None) -> dict[str, Any]:
        """Params and FLOPs of one image (the run's model card), counted layer by layer:
        2 x the multiply-accumulates of every convolution and dense layer, as torch's
        flop counter counts them.  The model's own input size is used."""
        return {"params": keras_param_count(model), "flops": keras_flops(model), "method": FLOPS_METHOD}

    @staticmethod
    def weights_sha256(model) -> str:
        """sha256 over every weight (path, dtype, shape, bytes) of a Keras model, as evaluated."""
        import hashlib

        h = hashlib.sha256()
        for w in model.weights:
            a = np.ascontiguousarray(w.numpy())
            h.update(f"{w.path}|{a.dtype}|{a.shape}|".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    # -------------------------------------------------------------- weights
    def save_model(self, model, path: str | Path) -> Path:
        """The backbone's weights as a Keras ``.weights.h5`` file (written then renamed)."""
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
        model.save_weights(str(tmp))
        tmp.replace(path)
        return path

    def load_model(self, model, path: str | Path, **_kw: Any):
        """Weights from :meth:`save_model`'s file or a tf-engine checkpoint (``.tf.npz``)."""
        p = Path(path)
        if p.name.endswith(".npz"):
            values = read_checkpoint(p)["model"]
            for var, val in zip(model.weights, values, strict=True):
                var.assign(val)
        else:
            model.load_weights(str(p))
        return model

    # ------------------------------------------------------------- training
    def train(self, model, loss_fn, train_set, *, backbone_spec, settings, workdir: str | Path, seed: int,
              resume: bool = True, init: str | None = None,
              on_epoch_end: Callable[[int, Any], Mapping[str, Any] | None] | None = None,
              progress: bool = True, sampler: str = "random", rank: int | None = None,
              world: int | None = None) -> TrainOutcome:
        """Train ``model`` with ``loss_fn`` on ``train_set``; the arguments are the torch engine's.

        ``init``: a tf-engine checkpoint whose backbone weights start the
        training (ignored when resuming).  One process only (``rank`` /
        ``world`` other than 0 / 1 are refused); with device ``auto`` it
        mirrors over several GPUs (``-o tf.mirrored``).  When training ends
        the backbone is written to ``workdir/saved_model/`` (``-o
        tf.saved_model=false`` skips it).
        """
        if (world or 1) != 1 or (rank or 0) != 0:
            raise ConfigError("the tf engine trains in one process; drop --nproc-per-node or use --engine torch")
        init = init if init is not None else settings.init
        if init and not (resume and (Path(workdir) / "checkpoints" / CHECKPOINT_NAME).is_file()):
            self.load_model(model, init)  # before the trainer: its replicas (several devices) copy these weights
        trainer = TFTrainer(self, model, loss_fn, train_set, backbone_spec=backbone_spec, settings=settings,
                            workdir=workdir, seed=seed, sampler=sampler)
        # one device: pinned here; several: the strategy places each replica's work itself
        place = tf.device(self.device_name(settings.device)) if trainer.strategy is None else contextlib.nullcontext()
        with place:
            outcome = trainer.fit(resume=resume, on_epoch_end=on_epoch_end, progress=progress)
        if self.options.saved_model:
            self.export_saved_model(outcome.model, Path(workdir) / "saved_model", backbone_spec=backbone_spec,
                                    about={"steps": outcome.steps, "stopped_by": outcome.stopped_by})
        return outcome

    # --------------------------------------------------------------- export
    def export_saved_model(self, model, path: str | Path, *, backbone_spec,
                           about: Mapping[str, Any] | None = None) -> Path:
        """Write ``model`` as a TensorFlow SavedModel folder (built aside, then renamed into place).

        Endpoints (``tf.saved_model.load(path).serve(x)``): ``serve`` (also
        ``serving_default``) takes normalised float32 ``(N, H, W, 3)`` images,
        as :meth:`embed` feeds the model; ``serve_rgb`` takes RGB uint8 images
        at the input size and normalises them with the backbone's mean and
        std.  Both return float32 ``(N, D)`` embeddings computed in float32.
        ``assets.extra/facebench.json`` states the preprocessing.
        """
        from harness.atomic import atomic_dir

        h, w = (int(v) for v in model.input_shape[1:3])
        mean = np.asarray(backbone_spec.mean, dtype=np.float32).reshape(1, 1, 1, 3)
        inv_std = (1.0 / np.asarray(backbone_spec.std, dtype=np.float32)).reshape(1, 1, 1, 3)  # as ImageTransform

        def serve(image):
            return tf.cast(model(image, training=False), tf.float32)

        def serve_rgb(rgb):
            return serve((tf.cast(rgb, tf.float32) - mean) * inv_std)

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("serve", serve, input_signature=[tf.TensorSpec((None, h, w, 3), tf.float32)])
        archive.add_endpoint("serve_rgb", serve_rgb, input_signature=[tf.TensorSpec((None, h, w, 3), tf.uint8)])
        info = {"format": "facebench-saved-model", "backbone": getattr(backbone_spec, "name", model.name),
                "input_size": [h, w], "layout": "nhwc", "color": "rgb",
                "mean": [float(v) for v in backbone_spec.mean], "std": [float(v) for v in backbone_spec.std],
                "embedding_size": int(model.output_shape[-1]), "weights_sha256": self.weights_sha256(model),
                "endpoints": {"serve": "normalised float32 NHWC", "serve_rgb": "RGB uint8 NHWC"},
                **dict(about or {})}
        path = Path(path)
        with atomic_dir(path, overwrite=True) as tmp:
            archive.write_out(str(tmp), verbose=False)
            (tmp / "assets.extra").mkdir(exist_ok=True)
            (tmp / "assets.extra" / "facebench.json").write_text(json.dumps(info, indent=2) + "\n")
        return path

    # ------------------------------------------------------------ inference
    def _forward(self, model, policy: str = "float32") -> Callable:
        """The model's inference function, traced once per precision policy."""
        key = (id(model), policy)
        if key not in self._infer or self._infer[key][0] is not model:
            self._infer[key] = (model, tf.function(lambda x: model(x, training=False), reduce_retracing=True))
        return self._infer[key][1]

    def embed(self, model, images: Sequence[np.ndarray] | Callable[[int], np.ndarray], n: int | None = None, *,
              backbone_spec, batch_size: int = 64, flip: str | None = None, device: str = "auto",
              progress: bool = False) -> np.ndarray:
        """Embeddings of RGB uint8 images, in order (the torch engine's contract).

        :param flip: ``"concat"``: [f(x), f(flip x)]; ``"sum"``: f(x) + f(flip x); None: f(x).
        """
        get, count = embed_source(images, n, flip=flip, batch_size=batch_size)
        size = tuple(int(s) for s in model.input_shape[1:3])
        transform = ImageTransform(size, backbone_spec.mean, backbone_spec.std)
        policy = precision_policy(self.options, self.device_name(device))
        forward = self._forward(model, policy)
        out: list[np.ndarray] = []
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=count, unit="img", desc="embed (tf)", dynamic_ncols=True, file=sys.stderr)
        try:
            with tf.device(self.device_name(device)), precision_scope(model, policy):
                for start in range(0, count, batch_size):
                    idx = range(start, min(count, start + batch_size))
                    x = tf.constant(np.stack([to_hwc(transform, get(i)) for i in idx]))
                    f = forward(x).numpy().astype(np.float32)
                    if flip is not None:
                        g = forward(tf.reverse(x, axis=[2])).numpy().astype(np.float32)
                        f = np.concatenate([f, g], axis=1) if flip == "concat" else f + g
                    out.append(f)
                    if bar is not None:
                        bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(out, axis=0)

    def time_forward(self, model, backbone_spec, *, batch: int, repeats: int = 5, device: str = "auto") -> float:
        """Milliseconds per image of a forward pass at ``batch`` (best of ``repeats``)."""
        h, w = (int(s) for s in model.input_shape[1:3])
        forward = self._forward(model)
        with tf.device(self.device_name(device)):
            x = tf.random.normal((batch, h, w, 3))
            forward(x).numpy()  # trace and warm up
            best = float("inf")
            for _ in range(max(1, repeats)):
                t = time.perf_counter()
                forward(x).numpy()
                best = min(best, time.perf_counter() - t)
        return 1000.0 * best / batch


def tfrecord_dataset(paths: str | Path | Sequence[str | Path], *, input_size: Sequence[int],
                     mean: Sequence[float], std: Sequence[float], batch_size: int = 32,
                     shuffle: int = 0, seed: int = 0) -> tf.data.Dataset:
    """``(image, label)`` batches read natively from ``.tfrecord`` files.

    Reads the schema ``harness data tfrecord`` writes (and insightface's /
    facenet's TF pipelines use): ``image/encoded`` (JPEG or PNG bytes) and
    ``image/class/label`` (int64).  Images are decoded as RGB, resized to
    ``input_size`` (bilinear) and normalised as ``(x - mean) / std``.
    """
    files = [str(paths)] if isinstance(paths, (str, Path)) else [str(p) for p in paths]
    if not files:
        raise ConfigError("tfrecord_dataset needs at least one .tfrecord file")
    h, w = int(input_size[0]), int(input_size[1])
    mean_t = tf.constant(mean, tf.float32)
    std_t = tf.constant(std, tf.float32)
    spec = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
            "image/class/label": tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        img = tf.io.decode_image(ex["image/encoded"], channels=3, expand_animations=False)
        img = tf.image.resize(tf.cast(img, tf.float32), (h, w))
        return (img - mean_t) / std_t, tf.cast(ex["image/class/label"], tf.int32)

    ds = tf.data.TFRecordDataset(files)
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)
