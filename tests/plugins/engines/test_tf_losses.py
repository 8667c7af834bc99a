"""Each TensorFlow loss equals its torch loss to 1e-5: value and gradient, same weights.

Parametrised over the losses the ``tf`` engine adapts (its spec's
``meta["adapts"]["loss"]``), with the option sets that switch formulas
(SphereFace's m1 > 1, cosine triplet), plus named edge cases: ArcFace's
``theta + m > pi`` fallback, a zero embedding, the center loss's centre update.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install 'facebench[tf]')")
torch = pytest.importorskip("torch")

from facebench_plugins.engines.tf_engine import TFEngine  # noqa: E402
from harness.registry import get_registry  # noqa: E402

REGISTRY = get_registry()
LOSSES = REGISTRY.get("engine", "tf").meta["adapts"]["loss"]
D, C, N = 16, 7, 24
#: option sets beyond each loss's defaults that take another branch of the formula
VARIANTS = [(name, {}) for name in LOSSES] + [
    ("combined", {"m1": 2.0, "m2": 0.1, "m3": 0.05}),   # SphereFace's monotone extension
    ("combined", {"m1": 1.0, "m2": 0.5, "m3": 0.1}),
    ("triplet", {"distance": "cosine"}),
    ("triplet", {"normalize": False, "margin": 0.5}),
    ("softmax", {"bias": False}),
    ("arcface", {"m": 0.9, "s": 32.0}),
]


def _pair(name: str, options: dict, embedding_size: int = D, num_classes: int = C):
    torch.manual_seed(3)
    t_loss = REGISTRY.build("loss", name, options, embedding_size=embedding_size, num_classes=num_classes)
    with torch.no_grad():  # class weights of a trained-looking size, not the 0.01 init
        for p in t_loss.parameters():
            p.normal_(0.0, 0.5)
    opts = REGISTRY.get("loss", name).make_options(options)
    return t_loss, TFEngine().adapt("loss", name, opts, t_loss)


def _data(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n // 4), 4)[:n] % C  # P x K batches, as the pk sampler makes
    return rng.normal(size=(n, D)).astype(np.float32), labels.astype(np.int64)


def _torch_value_and_grad(t_loss, emb: np.ndarray, labels: np.ndarray):
    x = torch.from_numpy(emb).requires_grad_(True)
    value = t_loss(x, torch.from_numpy(labels))
    value.backward()
    return float(value.detach()), x.grad.numpy()


def _tf_value_and_grad(f_loss, emb: np.ndarray, labels: np.ndarray, training: bool = False):
    x = tf.constant(emb)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = f_loss(x, tf.constant(labels.astype(np.int32)), training=training)
    return float(value), tape.gradient(value, x).numpy()


def _close(a, b, tol: float = 1e-5) -> None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.abs(a - b).max() <= tol * max(1.0, float(np.abs(b).max())), (a, b)


@pytest.mark.parametrize("name, options", VARIANTS, ids=[f"{n}-{o}" if o else n for n, o in VARIANTS])
def test_loss_and_gradient_equal_torch(name, options):
    t_loss, f_loss = _pair(name, options)
    t_loss.eval()
    for seed in range(3):
        emb, labels = _data(seed)
        t_value, t_grad = _torch_value_and_grad(t_loss, emb, labels)
        f_value, f_grad = _tf_value_and_grad(f_loss, emb, labels)
        _close(f_value, t_value)
        _close(f_grad, t_grad)
    if hasattr(t_loss, "logits"):
        with torch.no_grad():
            _close(f_loss.logits(tf.constant(emb)).numpy(), t_loss.logits(torch.from_numpy(emb)).numpy())


@pytest.mark.parametrize("m", [0.5, 1.2])
def test_arcface_fallback_past_pi(m):
    """Samples whose angle to their class centre is past pi - m take the th/mm branch in both."""
    t_loss, f_loss = _pair("arcface", {"m": m})
    w = t_loss.weight.detach().numpy()
    emb, labels = _data(5)
    unit = w[labels] / np.linalg.norm(w[labels], axis=1, keepdims=True)
    emb[: N // 2] = -3.0 * unit[: N // 2] + 0.05 * emb[: N // 2]  # theta near pi for half the batch
    cos = np.sum(emb * unit, axis=1) / np.linalg.norm(emb, axis=1)
    past = cos <= math.cos(math.pi - m)
    assert past.sum() >= N // 2 and (~past).any()  # both branches in one batch
    t_value, t_grad = _torch_value_and_grad(t_loss, emb, labels)
    f_value, f_grad = _tf_value_and_grad(f_loss, emb, labels)
    _close(f_value, t_value)
    _close(f_grad, t_grad)
    # the fallback target cos - m sin(m) is what the margin logits hold for those samples
    target = f_loss.margin_logits(tf.constant(emb), tf.constant(labels.astype(np.int32))).numpy()
    got = target[np.arange(N), labels][past] / f_loss.s
    _close(got, cos[past] - m * math.sin(m))


@pytest.mark.parametrize("name", ["arcface", "am_softmax", "softmax", "triplet"])
def test_a_zero_embedding_gives_the_same_finite_loss(name):
    t_loss, f_loss = _pair(name, {})
    emb, labels = _data(7)
    emb[0] = 0.0
    t_value, t_grad = _torch_value_and_grad(t_loss, emb, labels)
    f_value, f_grad = _tf_value_and_grad(f_loss, emb, labels)
    assert math.isfinite(f_value) and np.isfinite(f_grad).all()
    _close(f_value, t_value)
    if name != "triplet":  # triplet: the zero row's positives tie to within an ulp, and its gradient is
        _close(f_grad, t_grad)  # 1/eps = 1e12 x whichever one wins, so only the value is comparable


def test_center_loss_moves_its_centres_like_torch():
    """Training calls move the centres by the paper's rule; the loss uses them before the move."""
    t_loss, f_loss = _pair("center", {"alpha": 0.5, "lam": 0.1})
    t_loss.train()
    for seed in range(3):
        emb, labels = _data(seed)
        t_value, _ = _torch_value_and_grad(t_loss, emb, labels)
        f_value, _ = _tf_value_and_grad(f_loss, emb, labels, training=True)
        _close(f_value, t_value)
        _close(f_loss.centers.numpy(), t_loss.centers.numpy())
    assert np.abs(f_loss.centers.numpy()).max() > 0.1
    before = f_loss.centers.numpy().copy()
    f_loss(tf.constant(emb), tf.constant(labels.astype(np.int32)), training=False)
    assert np.array_equal(before, f_loss.centers.numpy())


def test_triplet_without_a_usable_anchor_is_refused():
    _t, f_loss = _pair("triplet", {})
    emb = np.random.default_rng(0).normal(size=(4, D)).astype(np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no anchor in this batch"):
        f_loss(tf.constant(emb), tf.constant(np.arange(4, dtype=np.int32)))


def test_unknown_loss_names_what_exists():
    from harness.errors import ConfigError

    with pytest.raises(ConfigError, match="no TensorFlow version of loss 'partial_fc'.*arcface"):
        TFEngine().adapt("loss", "partial_fc", None, _pair("arcface", {})[0])
