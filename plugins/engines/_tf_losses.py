"""TensorFlow versions of the built-in losses, formula for formula the torch ones.

Each class takes the loss's own options dataclass (``-o arcface.m=0.4``
works for both engines) and mirrors its torch module in
``facebench_plugins.losses``: the same parameters (a (C, D) class matrix,
with a bias for softmax/center), the same formulas and the same numerical
guards (``sqrt(max(1 - cos^2, 1e-12))``, ArcFace's ``th / mm`` fallback when
``theta + m > pi``, SphereFace's monotone extension for ``m1 > 1``, batch-hard
mining with a clamped square root).  :data:`BUILDERS` maps each loss spec's
name to its class; :func:`transfer_loss` copies a torch loss's parameters.

Every loss is a ``tf.Module``: ``loss(embeddings, labels, training=False)``
returns the scalar mean loss; classifier losses have ``logits(embeddings)``
(margin-free, for accuracy).  The center loss moves its centres (a
non-trainable variable) only when called with ``training=True``.
:func:`clone_tf_loss` builds a loss again (e.g. under a
``tf.distribute`` strategy's scope) with the same values.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf

from harness.errors import ConfigError

__all__ = ["BUILDERS", "BatchHardTriplet", "CenterSoftmax", "LinearSoftmax", "MarginSoftmax",
           "build_tf_loss", "clone_tf_loss", "margin_target", "transfer_loss"]

_SIN_EPS = 1e-12
_ACOS_EPS = 1e-7


def _check_classes(name: str, num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"{name}: a classifier loss needs num_classes >= 2, got {num_classes!r}; "
                          "check that the training set has at least two identities")


def _normalize(x: tf.Tensor) -> tf.Tensor:
    """torch's ``F.normalize(x, dim=1)``: x / max(||x||, 1e-12), with a finite gradient at x = 0
    (``tf.norm``'s is NaN there; torch's is zero)."""
    return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(x * x, axis=1, keepdims=True), 1e-24))


def _cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def _float(x: Any) -> tf.Tensor:
    x = tf.convert_to_tensor(x)
    return tf.cast(x, tf.float32) if x.dtype in (tf.float16, tf.bfloat16) else x


def _initial(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.01, (rows, cols)).astype(np.float32)


def margin_target(cos: tf.Tensor, m1: float, m2: float, m3: float) -> tf.Tensor:
    """psi(theta) of the target cosines, as ``facebench_plugins.losses.margin.margin_target``."""
    if m1 == 1.0:
        if m2 == 0.0:
            out = cos
        else:
            sin = tf.sqrt(tf.maximum(1.0 - cos * cos, _SIN_EPS))
            cos_theta_m = cos * math.cos(m2) - sin * math.sin(m2)
            threshold = math.cos(math.pi - m2)  # theta + m2 = pi
            out = tf.where(cos > threshold, cos_theta_m, cos - m2 * math.sin(m2))
    else:
        theta = tf.acos(tf.clip_by_value(cos, -1.0 + _ACOS_EPS, 1.0 - _ACOS_EPS))
        phi = m1 * theta + m2
        k = tf.stop_gradient(tf.floor(phi / math.pi))
        sign = 1.0 - 2.0 * tf.math.floormod(k, 2.0)
        out = sign * tf.cos(phi) - 2.0 * k
    return out - m3 if m3 else out


class LinearSoftmax(tf.Module):
    """Linear classifier (C, D) + cross-entropy (the ``softmax`` loss)."""

    has_classifier = True

    def __init__(self, embedding_size: int, num_classes: int, *, bias: bool = True, seed: int = 0,
                 name: str = "softmax"):
        super().__init__(name=name)
        _check_classes(name, num_classes)
        self.loss_name, self.embedding_size, self.num_classes = name, int(embedding_size), int(num_classes)
        self.weight = tf.Variable(_initial(num_classes, embedding_size, seed), name="weight")
        self.bias = tf.Variable(tf.zeros([num_classes]), name="bias") if bias else None

    def logits(self, embeddings, labels=None) -> tf.Tensor:
        x = _float(embeddings)
        out = tf.matmul(x, tf.cast(self.weight, x.dtype), transpose_b=True)
        return out if self.bias is None else out + tf.cast(self.bias, x.dtype)

    def __call__(self, embeddings, labels, training: bool = False) -> tf.Tensor:
        return _cross_entropy(self.logits(embeddings), tf.cast(labels, tf.int32))


class CenterSoftmax(LinearSoftmax):
    """Softmax + ``lam`` x center loss; centres move at rate ``alpha`` (Wen et al. 2016)."""

    def __init__(self, embedding_size: int, num_classes: int, *, lam: float = 0.003, alpha: float = 0.5,
                 bias: bool = True, seed: int = 0):
        super().__init__(embedding_size, num_classes, bias=bias, seed=seed, name="center")
        self.lam, self.alpha = float(lam), float(alpha)
        # MEAN: under a MirroredStrategy each replica's centre update is averaged, so the copies stay equal
        self.centers = tf.Variable(tf.zeros([num_classes, embedding_size]), trainable=False, name="centers",
                                   aggregation=tf.VariableAggregation.MEAN)

    def center_loss(self, embeddings, labels) -> tf.Tensor:
        x = _float(embeddings)
        c = tf.gather(tf.cast(self.centers, x.dtype), labels)
        return 0.5 * tf.reduce_mean(tf.reduce_sum(tf.square(x - c), axis=1))

    def update_centers(self, embeddings, labels) -> None:
        """c_j <- c_j - alpha * sum_i [y_i = j](c_j - x_i) / (1 + count_j)."""
        x = tf.cast(tf.stop_gradient(embeddings), self.centers.dtype)
        sums = tf.math.unsorted_segment_sum(x, labels, self.num_classes)
        counts = tf.math.unsorted_segment_sum(tf.ones_like(labels, self.centers.dtype), labels,
                                              self.num_classes)[:, None]
        self.centers.assign_sub(self.alpha * (counts * self.centers - sums) / (1.0 + counts))

    def __call__(self, embeddings, labels, training: bool = False) -> tf.Tensor:
        labels = tf.cast(labels, tf.int32)
        loss = _cross_entropy(self.logits(embeddings), labels) + self.lam * self.center_loss(embeddings, labels)
        if training:
            self.update_centers(embeddings, labels)
        return loss


class MarginSoftmax(tf.Module):
    """Cross-entropy over ``s``-scaled cosine logits with the (m1, m2, m3) target margin."""

    has_classifier = True

    def __init__(self, embedding_size: int, num_classes: int, *, s: float, m1: float = 1.0, m2: float = 0.0,
                 m3: float = 0.0, seed: int = 0, name: str = "margin"):
        super().__init__(name=name)
        _check_classes(name, num_classes)
        self.loss_name, self.embedding_size, self.num_classes = name, int(embedding_size), int(num_classes)
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.weight = tf.Variable(_initial(num_classes, embedding_size, seed), name="weight")

    def cosine(self, embeddings) -> tf.Tensor:
        x = _normalize(_float(embeddings))
        w = _normalize(tf.cast(self.weight, x.dtype))
        return tf.clip_by_value(tf.matmul(x, w, transpose_b=True), -1.0, 1.0)

    def logits(self, embeddings, labels=None) -> tf.Tensor:
        return self.s * self.cosine(embeddings)

    def margin_logits(self, embeddings, labels) -> tf.Tensor:
        cos = self.cosine(embeddings)
        labels = tf.cast(labels, tf.int32)
        target = margin_target(tf.gather(cos, labels[:, None], batch_dims=1), self.m1, self.m2, self.m3)
        is_target = tf.one_hot(labels, self.num_classes, on_value=True, off_value=False)
        return self.s * tf.where(is_target, target, cos)

    def __call__(self, embeddings, labels, training: bool = False) -> tf.Tensor:
        return _cross_entropy(self.margin_logits(embeddings, labels), tf.cast(labels, tf.int32))


class BatchHardTriplet(tf.Module):
    """Batch-hard triplet loss (euclidean on normalised embeddings, or cosine); no parameters."""

    has_classifier = False

    def __init__(self, embedding_size: int, *, margin: float = 0.2, distance: str = "euclidean",
                 normalize: bool = True):
        super().__init__(name="triplet")
        self.loss_name, self.embedding_size = "triplet", int(embedding_size)
        self.margin, self.distance, self.normalize = float(margin), distance, bool(normalize)

    def pairwise(self, x: tf.Tensor) -> tf.Tensor:
        if self.distance == "cosine":
            x = _normalize(x)
            return 1.0 - tf.matmul(x, x, transpose_b=True)
        if self.normalize:
            x = _normalize(x)
        sq = tf.reduce_sum(x * x, axis=1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(x, x, transpose_b=True)
        return tf.sqrt(tf.maximum(d2, 1e-12))

    def __call__(self, embeddings, labels, training: bool = False) -> tf.Tensor:
        x = _float(embeddings)
        d = self.pairwise(x)
        same = tf.equal(labels[:, None], labels[None, :])
        pos = tf.logical_and(same, tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool)))
        neg = tf.logical_not(same)
        # one hardest sample per anchor (the first of tied ones, as torch's max / min pick it), so a
        # tie does not split the gradient as reduce_max would
        hard_pos = tf.argmax(tf.where(pos, d, -np.inf), axis=1, output_type=tf.int32)
        hard_neg = tf.argmin(tf.where(neg, d, np.inf), axis=1, output_type=tf.int32)
        d_pos = tf.gather(d, hard_pos[:, None], batch_dims=1)[:, 0]
        d_neg = tf.gather(d, hard_neg[:, None], batch_dims=1)[:, 0]
        valid = tf.logical_and(tf.reduce_any(pos, axis=1), tf.reduce_any(neg, axis=1))
        tf.debugging.assert_greater(tf.reduce_sum(tf.cast(valid, tf.int32)), 0, message=(
            "triplet: no anchor in this batch has both a positive and a negative; train triplet with the "
            "'pk' sampler, K >= 2 images per identity and P >= 2 identities"))
        per_anchor = tf.nn.relu(tf.boolean_mask(d_pos - d_neg, valid) + self.margin)
        return tf.reduce_mean(per_anchor)


#: loss spec name -> factory(options, embedding_size, num_classes, seed)
BUILDERS: Mapping[str, Callable[..., tf.Module]] = {
    "softmax": lambda o, d, c, seed: LinearSoftmax(d, c, bias=o.bias, seed=seed),
    "center": lambda o, d, c, seed: CenterSoftmax(d, c, lam=o.lam, alpha=o.alpha, bias=o.bias, seed=seed),
    "triplet": lambda o, d, c, seed: BatchHardTriplet(d, margin=o.margin, distance=o.distance,
                                                      normalize=o.normalize),
    "arcface": lambda o, d, c, seed: MarginSoftmax(d, c, s=o.s, m2=o.m, seed=seed, name="arcface"),
    "cosface": lambda o, d, c, seed: MarginSoftmax(d, c, s=o.s, m3=o.m, seed=seed, name="cosface"),
    "am_softmax": lambda o, d, c, seed: MarginSoftmax(d, c, s=o.s, m3=o.m, seed=seed, name="am_softmax"),
    "combined": lambda o, d, c, seed: MarginSoftmax(d, c, s=o.s, m1=o.m1, m2=o.m2, m3=o.m3, seed=seed,
                                                    name="combined"),
}


def build_tf_loss(name: str, options: Any, *, embedding_size: int, num_classes: int, seed: int = 0) -> tf.Module:
    """The TensorFlow version of loss ``name`` built from its options dataclass."""
    if name not in BUILDERS:
        raise ConfigError(f"the tf engine has no TensorFlow version of loss {name!r}; it has: "
                          f"{', '.join(sorted(BUILDERS))}")
    loss = BUILDERS[name](options, int(embedding_size), int(num_classes), int(seed))
    loss.build_args = (name, options, int(embedding_size), int(num_classes), int(seed))
    return loss


def clone_tf_loss(loss: tf.Module) -> tf.Module:
    """The same loss built again (its variables made in the current scope) with ``loss``'s values.

    :raises ConfigError: ``loss`` was not made by :func:`build_tf_loss`.
    """
    args = getattr(loss, "build_args", None)
    if args is None:
        raise ConfigError(f"loss {getattr(loss, 'loss_name', type(loss).__name__)} was not built by "
                          "build_tf_loss, so it cannot be rebuilt for several devices; build it with "
                          "build_tf_loss or train on one device (-o tf.mirrored=false)")
    name, options, embedding_size, num_classes, seed = args
    twin = build_tf_loss(name, options, embedding_size=embedding_size, num_classes=num_classes, seed=seed)
    for dst, src in zip(twin.variables, loss.variables, strict=True):
        dst.assign(src)
    return twin


def transfer_loss(torch_loss: Any, tf_loss: tf.Module) -> None:
    """Copy a torch loss's class weights (and bias, centres) into its TensorFlow twin."""
    state = {k: v.detach().cpu().numpy() for k, v in torch_loss.state_dict().items()}
    pairs = {"weight": ("classifier.weight", "weight"), "bias": ("classifier.bias",),
             "centers": ("centers",)}
    for attr, keys in pairs.items():
        var = getattr(tf_loss, attr, None)
        if var is None:
            continue
        key = next((k for k in keys if k in state), None)
        if key is None or tuple(state[key].shape) != tuple(var.shape):
            raise ConfigError(f"loss {tf_loss.loss_name}: torch state has no {attr} of shape {tuple(var.shape)}")
        var.assign(state[key])
