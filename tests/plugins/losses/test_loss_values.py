"""Each built-in loss against values computed independently with numpy / math.

Small cases: 2 or 3 classes, 3-d embeddings, weights set by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.errors import ConfigError, HarnessError
from harness.registry import Registry
from harness.specs import OptionError

from facebench_plugins.losses._common import LossInputError

REG = Registry()
CLASSIFIER_LOSSES = ["am_softmax", "arcface", "center", "combined", "cosface", "softmax"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# two classes in 3-d, weights not unit length (the margin losses normalise them)
W = np.array([[2.0, 0.0, 0.0], [0.3, 1.5, -0.4]])
X = np.array([[0.9, 0.4, 0.1], [-0.2, 1.1, 0.3], [0.5, -0.7, 0.8]])
Y = np.array([0, 1, 1])


def _ce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy, written out."""
    total = 0.0
    for row, y in zip(logits, labels):
        mx = max(row)
        lse = mx + math.log(sum(math.exp(v - mx) for v in row))
        total += lse - row[y]
    return total / len(labels)


def _cosines(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = np.zeros((len(x), len(w)))
    for i, xi in enumerate(x):
        for j, wj in enumerate(w):
            out[i, j] = float(np.dot(xi, wj) / (np.linalg.norm(xi) * np.linalg.norm(wj)))
    return out


def _build(name: str, options: dict | None = None, num_classes: int = 2, embedding_size: int = 3):
    loss = REG.build("loss", name, options or {}, embedding_size=embedding_size, num_classes=num_classes)
    return loss.double()


def _set_margin_weight(loss, w: np.ndarray) -> None:
    with torch.no_grad():
        loss.weight.copy_(torch.from_numpy(w))


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(y, dtype=torch.long)


# ----------------------------------------------------------------- softmax
def test_softmax_matches_hand_computed_cross_entropy():
    loss = _build("softmax")
    b = np.array([0.1, -0.2])
    with torch.no_grad():
        loss.classifier.weight.copy_(_t(W))
        loss.classifier.bias.copy_(_t(b))
    logits = np.array([[float(np.dot(x, w) + bj) for w, bj in zip(W, b)] for x in X])
    got = loss(_t(X), _labels(Y))
    assert float(got.detach()) == pytest.approx(_ce(logits, Y), rel=1e-12)
    np.testing.assert_allclose(loss.logits(_t(X)).detach().numpy(), logits, rtol=1e-12)


# ------------------------------------------------------------------ margins
def _arcface_target(c: float, m: float) -> float:
    theta = math.acos(c)
    if theta + m <= math.pi:
        return math.cos(theta + m)
    return c - m * math.sin(m)  # insightface's th/mm fallback


@pytest.mark.parametrize("s, m", [(64.0, 0.5), (10.0, 0.3)])
def test_arcface_matches_hand_computed(s, m):
    loss = _build("arcface", {"s": s, "m": m})
    _set_margin_weight(loss, W)
    cos = _cosines(X, W)
    logits = s * cos.copy()
    for i, y in enumerate(Y):
        logits[i, y] = s * _arcface_target(cos[i, y], m)
    assert float(loss(_t(X), _labels(Y)).detach()) == pytest.approx(_ce(logits, Y), rel=1e-9)
    np.testing.assert_allclose(loss.logits(_t(X)).detach().numpy(), s * cos, rtol=1e-12)


def test_arcface_falls_back_past_pi_and_stays_finite():
    m = 0.5
    loss = _build("arcface", {"s": 8.0, "m": m})
    _set_margin_weight(loss, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    # sample 0: theta = 170 deg to its class (theta + m > pi); sample 1: exactly opposite (cos = -1);
    # sample 2: exactly on its class (cos = 1): the two points where d acos / d cos is infinite
    a = math.radians(170)
    x = np.array([[math.cos(a), math.sin(a), 0.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    y = np.array([0, 1, 0])
    cos = _cosines(x, np.eye(3)[:2])
    margin_logits = loss.margin_logits(_t(x), _labels(y)).detach().numpy()
    assert margin_logits[0, 0] == pytest.approx(8.0 * (cos[0, 0] - m * math.sin(m)), rel=1e-12)
    assert margin_logits[1, 1] == pytest.approx(8.0 * (-1.0 - m * math.sin(m)), rel=1e-12)
    assert margin_logits[2, 0] == pytest.approx(8.0 * math.cos(m), rel=1e-6)
    # the margin (fallback included) always lowers the target logit, and the gradient is finite
    no_margin = loss.logits(_t(x)).detach().numpy()
    for i, yi in enumerate(y):
        assert margin_logits[i, yi] < no_margin[i, yi]
    xt = _t(x).requires_grad_(True)
    loss(xt, _labels(y)).backward()
    assert torch.isfinite(xt.grad).all()
    assert torch.isfinite(loss.weight.grad).all()


@pytest.mark.parametrize("name, s, m", [("cosface", 64.0, 0.35), ("am_softmax", 30.0, 0.35), ("cosface", 5.0, 0.2)])
def test_additive_cosine_margin_matches_hand_computed(name, s, m):
    loss = _build(name, {"s": s, "m": m})
    _set_margin_weight(loss, W)
    cos = _cosines(X, W)
    logits = s * cos.copy()
    for i, y in enumerate(Y):
        logits[i, y] = s * (cos[i, y] - m)
    assert float(loss(_t(X), _labels(Y)).detach()) == pytest.approx(_ce(logits, Y), rel=1e-9)


def test_cosface_and_am_softmax_defaults_follow_their_papers():
    assert REG.validate_options("loss", "cosface", {}).s == 64.0
    assert REG.validate_options("loss", "am_softmax", {}).s == 30.0
    assert REG.validate_options("loss", "am_softmax", {}).m == 0.35


def _sphere_psi(theta: float, m1: float, m2: float) -> float:
    """SphereFace's monotone psi, generalised with an additive angle."""
    phi = m1 * theta + m2
    k = math.floor(phi / math.pi)
    return (-1) ** k * math.cos(phi) - 2 * k


@pytest.mark.parametrize(
    "m1, m2, m3",
    [
        (1.0, 0.3, 0.2),  # the default combined margin (arcface + cosface)
        (1.0, 0.0, 0.35),  # pure cosface
        (1.0, 0.5, 0.0),  # pure arcface
        (4.0, 0.0, 0.0),  # SphereFace's m = 4
        (1.35, 0.0, 0.0),  # SphereFace-R style small multiplicative margin
        (2.0, 0.2, 0.1),  # all three
    ],
)
def test_combined_margin_matches_hand_computed(m1, m2, m3):
    s = 16.0
    loss = _build("combined", {"s": s, "m1": m1, "m2": m2, "m3": m3})
    _set_margin_weight(loss, W)
    cos = _cosines(X, W)
    logits = s * cos.copy()
    for i, y in enumerate(Y):
        theta = math.acos(cos[i, y])
        if m1 == 1.0:
            target = _arcface_target(cos[i, y], m2) if m2 else cos[i, y]
        else:
            target = _sphere_psi(theta, m1, m2)
        logits[i, y] = s * (target - m3)
    assert float(loss(_t(X), _labels(Y)).detach()) == pytest.approx(_ce(logits, Y), rel=1e-6)


def test_sphereface_psi_known_values_and_monotone():
    from facebench_plugins.losses.margin import margin_target

    # m = 4: psi(pi/2) = cos(2 pi) - 2*2 = -3; psi(pi) = cos(4 pi) - 2*4 = -7 (= 1 - 2m)
    for theta, expected in [(0.0, 1.0), (math.pi / 8, 0.0), (math.pi / 2, -3.0), (math.pi, -7.0)]:
        got = float(margin_target(torch.tensor([math.cos(theta)], dtype=torch.float64), 4.0, 0.0, 0.0))
        assert got == pytest.approx(expected, abs=1e-5)
    thetas = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    for m1, m2 in [(4.0, 0.0), (1.35, 0.0), (2.0, 0.2), (1.0, 0.5), (1.0, 0.3)]:
        psi = margin_target(torch.cos(thetas), m1, m2, 0.0)
        assert bool((psi[1:] <= psi[:-1] + 1e-9).all()), f"psi not decreasing for m1={m1}, m2={m2}"


def test_margin_gradients_match_finite_differences():
    torch.manual_seed(0)
    for options in ({"s": 4.0, "m": 0.5}, ):
        loss = _build("arcface", options, num_classes=3)
        x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        y = _labels([0, 1, 2, 1])
        assert torch.autograd.gradcheck(lambda e: loss(e, y), (x,))
    loss = _build("combined", {"s": 4.0, "m1": 3.0, "m2": 0.1, "m3": 0.1}, num_classes=3)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: loss(e, _labels([2, 0, 1, 1])), (x,))


@pytest.mark.parametrize("name", ["arcface", "cosface", "combined", "softmax"])
def test_head_runs_in_float32_under_bf16_autocast(name):
    torch.manual_seed(0)
    loss = REG.build("loss", name, {}, embedding_size=16, num_classes=5)
    x = torch.randn(8, 16)
    y = torch.randint(0, 5, (8,))
    ref = loss(x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(x, y)
        logits = loss.logits(x)
    assert got.dtype == torch.float32 and logits.dtype == torch.float32
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-6)


# ------------------------------------------------------------------- center
def test_center_loss_value_and_center_update_follow_wen_et_al():
    lam, alpha = 0.1, 0.5
    loss = _build("center", {"lam": lam, "alpha": alpha}, num_classes=3)
    w = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.2, -0.3, 1.0]])
    centers = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 1.0], [-1.0, 0.0, 0.0]])
    with torch.no_grad():
        loss.classifier.weight.copy_(_t(w))
        loss.classifier.bias.zero_()
        loss.centers.copy_(_t(centers))
    x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 1.0]])
    y = np.array([0, 1, 1, 0])  # class 2 absent from the batch
    logits = x @ w.T
    center_term = 0.5 * np.mean([np.sum((xi - centers[yi]) ** 2) for xi, yi in zip(x, y)])
    expected = _ce(logits, y) + lam * center_term
    got = loss(_t(x).requires_grad_(True), _labels(y))
    assert float(got.detach()) == pytest.approx(expected, rel=1e-12)
    # Algorithm 1: delta c_j = sum_{y_i=j} (c_j - x_i) / (1 + n_j); c_j -= alpha * delta c_j
    updated = centers.copy()
    for j in range(3):
        members = x[y == j]
        delta = sum((centers[j] - xi for xi in members), np.zeros(3)) / (1 + len(members))
        updated[j] = centers[j] - alpha * delta
    np.testing.assert_allclose(loss.centers.numpy(), updated, rtol=1e-12)
    np.testing.assert_allclose(loss.centers.numpy()[2], centers[2])  # untouched


def test_center_update_only_while_training_and_centers_not_trained_by_the_optimiser():
    loss = _build("center", {}, num_classes=3)
    assert "centers" not in dict(loss.named_parameters())
    x, y = torch.randn(4, 3, dtype=torch.float64), _labels([0, 1, 2, 0])
    before = loss.centers.clone()
    loss.eval()
    loss(x, y)
    assert torch.equal(loss.centers, before)
    loss.train()
    with torch.no_grad():
        loss(x, y)
    assert torch.equal(loss.centers, before)
    loss(x, y)
    assert not torch.equal(loss.centers, before)


# ------------------------------------------------------------------ triplet
PTS = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.8, 0.6], [0.9, -0.1]])
PTS_Y = np.array([0, 0, 1, 1, 1])


def _triplet_by_hand(x: np.ndarray, y: np.ndarray, margin: float, dist) -> float:
    losses = []
    for a in range(len(x)):
        pos = [dist(x[a], x[p]) for p in range(len(x)) if p != a and y[p] == y[a]]
        neg = [dist(x[a], x[n]) for n in range(len(x)) if y[n] != y[a]]
        if pos and neg:
            losses.append(max(0.0, max(pos) - min(neg) + margin))
    return sum(losses) / len(losses)


def _unit(v):
    return v / np.linalg.norm(v)


@pytest.mark.parametrize(
    "options, dist",
    [
        ({"distance": "euclidean", "normalize": "false"}, lambda a, b: float(np.linalg.norm(a - b))),
        ({"distance": "euclidean"}, lambda a, b: float(np.linalg.norm(_unit(a) - _unit(b)))),
        ({"distance": "cosine"}, lambda a, b: 1.0 - float(np.dot(_unit(a), _unit(b)))),
    ],
)
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_batch_hard_triplet_matches_brute_force(options, dist, margin):
    x = PTS * np.array([[1.0], [2.0], [0.5], [1.0], [3.0]])  # unequal norms
    loss = _build("triplet", {**options, "margin": str(margin)}, num_classes=2, embedding_size=2)
    got = loss(_t(x), _labels(PTS_Y))
    assert float(got.detach()) == pytest.approx(_triplet_by_hand(x, PTS_Y, margin, dist), rel=1e-9)


def test_triplet_skips_anchors_without_positive_and_refuses_hopeless_batches():
    loss = _build("triplet", {}, num_classes=3, embedding_size=2)
    # label 2 has a single image: it is not an anchor but still a negative for others
    x = _t(PTS)
    y = _labels([0, 0, 1, 1, 2])
    expected = _triplet_by_hand(PTS, np.array([0, 0, 1, 1, 2]), 0.2,
                                lambda a, b: float(np.linalg.norm(_unit(a) - _unit(b))))
    assert float(loss(x, y).detach()) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(LossInputError, match="pk"):
        loss(x, _labels([0, 1, 2, 3, 4]))  # no positives at all
    with pytest.raises(LossInputError, match="pk"):
        loss(x, _labels([0, 0, 0, 0, 0]))  # no negatives at all
    assert isinstance(LossInputError("x"), HarnessError)


def test_triplet_gradient_is_finite_for_coincident_points():
    loss = _build("triplet", {"normalize": "false"}, num_classes=2, embedding_size=2)
    x = _t([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).requires_grad_(True)
    loss(x, _labels([0, 0, 1, 1])).backward()
    assert torch.isfinite(x.grad).all()


# ------------------------------------------------------------- spec contract
def test_loss_specs_declare_classifier_and_sampler():
    names = REG.names("loss")
    for name in CLASSIFIER_LOSSES + ["triplet"]:
        assert name in names and REG.owner("loss", name) == "losses"
    triplet = REG.get("loss", "triplet")
    assert triplet.needs_classifier is False and triplet.sampler == "pk"
    for name in CLASSIFIER_LOSSES:
        spec = REG.get("loss", name)
        assert spec.needs_classifier is True and spec.sampler == "random"
        assert spec.paper and spec.license and spec.framework == "torch"


@pytest.mark.parametrize("name", [n for n in REG.names("loss") if REG.get("loss", n).needs_classifier])
def test_classifier_losses_give_margin_free_logits(name):
    torch.manual_seed(0)
    loss = REG.build("loss", name, {}, embedding_size=8, num_classes=6)
    x, y = torch.randn(5, 8), torch.randint(0, 6, (5,))
    logits = loss.logits(x)
    assert logits.shape == (5, 6)
    assert torch.equal(loss.logits(x, y), logits)  # labels do not change them (no margin)


def test_bad_options_and_inputs_give_clear_errors():
    with pytest.raises(OptionError, match="arcface.m"):
        REG.validate_options("loss", "arcface", {"m": "2.0"})
    with pytest.raises(OptionError, match="euclidean"):
        REG.validate_options("loss", "triplet", {"distance": "manhattan"})
    with pytest.raises(OptionError, match="alpha"):
        REG.validate_options("loss", "center", {"alpha": "0"})
    with pytest.raises(OptionError, match="m1"):
        REG.validate_options("loss", "combined", {"m1": "0.5"})
    with pytest.raises(ConfigError, match="num_classes"):
        REG.build("loss", "arcface", {}, embedding_size=4, num_classes=1)
    loss = REG.build("loss", "cosface", {}, embedding_size=4, num_classes=3)
    with pytest.raises(LossInputError, match=r"\(N, 4\)"):
        loss(torch.randn(2, 5), _labels([0, 1]))
    with pytest.raises(LossInputError, match=r"\[0, 3\)"):
        loss(torch.randn(2, 4), _labels([0, 3]))
    with pytest.raises(LossInputError, match="integer"):
        loss(torch.randn(2, 4), torch.tensor([0.0, 1.0]))
