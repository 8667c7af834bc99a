"""Tiny Keras networks and data for the tf engine's feature tests (no torch needed).

Imported by the test modules and by the scripts they start in their own
processes (``_tf_resume_script.py``, ``_tf_mirrored_script.py``), so it only
imports TensorFlow / Keras when a model or loss is made.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from harness.specs import BackboneSpec
from harness.types import ImageSet

EMB = 16
SIZE = 32


def tiny_spec(size: int = SIZE, emb: int = EMB) -> BackboneSpec:
    return BackboneSpec(name="tinynet", summary="tiny test CNN (Keras)", factory=lambda o: None,
                        framework="tensorflow", input_size=(size, size), embedding_size=emb)


def tiny_keras_model(size: int = SIZE, emb: int = EMB, *, dropout: float = 0.2, batch_norm: bool = True):
    """conv-(BN)-PReLU x2, average pool, dropout, dense -> (BN) embedding; layers named like the
    engine's backbones so weight decay splits the same way."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3), name="image")
    x = inp
    for i, width in ((1, 8), (2, 16)):
        x = layers.Conv2D(width, 3, 2, "same", use_bias=not batch_norm, name=f"conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i}")(x)
        x = layers.PReLU(shared_axes=[1, 2], name=f"act{i}")(x)
    x = layers.Flatten()(layers.AveragePooling2D(4)(x))
    if dropout:
        x = layers.Dropout(dropout, name="drop")(x)
    x = layers.Dense(emb, name="fc")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="features")(x)
    return keras.Model(inp, x, name="tinynet")


def tiny_loss(name: str = "softmax", classes: int = 8, emb: int = EMB, **options):
    """A built-in loss's TensorFlow version, through the registry's options."""
    from facebench_plugins.engines._tf_losses import build_tf_loss
    from harness.registry import get_registry

    opts = get_registry().get("loss", name).make_options(options)
    return build_tf_loss(name, opts, embedding_size=emb, num_classes=classes)


def synthetic_imageset(n: int = 64, classes: int = 8, size: int = 40, seed: int = 0,
                       delay: float = 0.0) -> ImageSet:
    """Class-dependent random colour images (learnable), deterministic from ``seed``; ``delay``
    seconds of sleep per image load slow a run down without changing any number."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    base = rng.integers(0, 256, size=(classes, 3), dtype=np.int64)
    images = [np.clip(base[labels[i]] + rng.integers(-60, 60, size=(size, size, 3)), 0, 255).astype(np.uint8)
              for i in range(n)]

    def loader(key: str) -> np.ndarray:
        if delay:
            time.sleep(delay)
        return images[int(key)]

    return ImageSet(keys=[str(i) for i in range(n)], labels=labels, loader=loader,
                    identities=[f"c{c}" for c in range(classes)], aligned="test")


#: a few LFW funneled faces of different people
LFW_FACES = ("Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "George_W_Bush/George_W_Bush_0007.jpg",
             "Colin_Powell/Colin_Powell_0040.jpg", "Tony_Blair/Tony_Blair_0018.jpg")


def lfw_faces(root: Path, size: tuple[int, int]) -> np.ndarray:
    """Real LFW funneled faces: the centre 130x130 (the face, as the funneled set aligns it)
    resized to ``size``, as (N, H, W, 3) RGB uint8."""
    import cv2

    out = []
    for rel in LFW_FACES:
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(root / rel)
        img = cv2.cvtColor(img[60:190, 60:190], cv2.COLOR_BGR2RGB)
        out.append(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def quiet_tensorflow() -> None:
    """Fewer TensorFlow start-up lines in a child process's stderr."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
