"""Contract and behaviour tests of the built-in inpainters."""

from __future__ import annotations

import numpy as np
import pytest

from harness.formats.mesh import mesh_image
from harness.metrics.image import psnr
from harness.specs import InpainterSpec, OptionError

NAMES = ["demeshnet", "multitask_convnet", "navier_stokes", "telea"]


def _face(seed: int, size: int = 64) -> np.ndarray:
    """A smooth face-like test image: shaded ellipse with eyes and mouth (no lines of its own)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), rng.integers(60, 120, 3), np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c), (size // 3, size * 2 // 5), 0, 0, 360, tuple(int(v) for v in rng.integers(150, 220, 3)), -1)
    for dx in (-size // 7, size // 7):
        cv2.circle(img, (c + dx, c - size // 10), max(2, size // 20), (40, 30, 30), -1)
    cv2.ellipse(img, (c, c + size // 5), (size // 8, size // 20), 0, 0, 360, (120, 50, 60), -1)
    return cv2.GaussianBlur(img, (5, 5), 1.5)


@pytest.fixture(scope="module")
def registry():
    from harness.registry import Registry

    return Registry()


def test_all_four_are_listed_without_importing_frameworks(registry):
    assert registry.names("inpainter") == NAMES
    for spec in registry.specs("inpainter"):
        assert isinstance(spec, InpainterSpec) and spec.summary and spec.paper
    assert registry.get("inpainter", "demeshnet").trainable
    assert registry.get("inpainter", "multitask_convnet").trainable
    assert not registry.get("inpainter", "telea").trainable
    ident = registry.get("inpainter", "demeshnet").meta["identity_backbone"]
    assert ident["name"] == "mobilefacenet" and ident["options"] == {"weights": "casia"}


def test_bad_options_are_refused_with_the_option_named(registry):
    with pytest.raises(OptionError, match="mask"):
        registry.validate_options("inpainter", "telea", {"mask": "perfect"})
    with pytest.raises(OptionError, match="patch"):
        registry.validate_options("inpainter", "multitask_convnet", {"patch": "30"})
    with pytest.raises(OptionError, match="identity"):
        registry.validate_options("inpainter", "demeshnet", {"identity": "dlib"})


@pytest.mark.parametrize("name", NAMES)
def test_restore_keeps_sizes_and_dtype(registry, name):
    if name in ("demeshnet", "multitask_convnet"):
        pytest.importorskip("torch")
    pytest.importorskip("cv2")
    inp = registry.build("inpainter", name, {"device": "cpu"} if name in ("demeshnet", "multitask_convnet") else {})
    imgs = [mesh_image(_face(0, 64), 1)[0], mesh_image(_face(1, 75)[:70], 2)[0]]  # odd sizes too
    out = inp.restore(imgs)
    assert [o.shape for o in out] == [i.shape for i in imgs]
    assert all(o.dtype == np.uint8 for o in out)
    with pytest.raises(ValueError, match="uint8"):
        inp.restore([imgs[0].astype(np.float32)])


def test_mask_estimator_finds_the_mesh(registry):
    pytest.importorskip("cv2")
    from facebench_plugins.inpainters._opencv import estimate_mesh_mask, mask_iou

    ious, empty = [], []
    for s in range(6):
        clean = _face(s, 112)
        meshed, mask = mesh_image(clean, 100 + s)
        ious.append(mask_iou(estimate_mesh_mask(meshed, k=1.5, min_deviation=10), mask))
        empty.append(estimate_mesh_mask(clean, k=1.5, min_deviation=10).mean())
    # far better than chance (the mesh covers ~20 % of the image) and quiet on a clean face
    assert np.mean(ious) > 0.3
    assert np.mean(empty) < 0.05
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


@pytest.mark.parametrize("name", ["telea", "navier_stokes"])
def test_opencv_inpainting_restores_meshed_faces(registry, name):
    pytest.importorskip("cv2")
    est = registry.build("inpainter", name, {})
    oracle = registry.build("inpainter", name, {"mask": "oracle"})
    assert oracle.needs_mask and not est.needs_mask
    clean = [_face(s, 112) for s in range(4)]
    pairs = [mesh_image(c, 10 + s) for s, c in enumerate(clean)]
    meshed, masks = [p[0] for p in pairs], [p[1] for p in pairs]
    floor = np.mean([psnr(c, m) for c, m in zip(clean, meshed)])
    blind = np.mean([psnr(c, r) for c, r in zip(clean, est.restore(meshed))])
    given = np.mean([psnr(c, r) for c, r in zip(clean, oracle.restore(meshed, masks))])
    assert blind > floor + 1.0
    assert given > blind
    with pytest.raises(ValueError, match="oracle"):
        oracle.restore(meshed)


@pytest.mark.parametrize("name", ["multitask_convnet", "demeshnet"])
def test_nets_train_without_nan_and_round_trip(registry, name, tmp_path):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    opts = {"device": "cpu", "width": 8, "batch_size": 4, "patch": 48 if name == "multitask_convnet" else 0}
    if name == "demeshnet":
        opts["identity"] = "none"
    inp = registry.build("inpainter", name, opts)
    clean = [_face(s, 64) for s in range(8)]
    hist = inp.fit(clean, rng_seed=0, steps=25, progress=False)
    assert hist["steps"] == 25 and all(np.isfinite(hist["loss"]))
    assert np.mean(hist["loss"][-2:]) < hist["loss"][0]  # it learns
    meshed = [mesh_image(c, 3)[0] for c in clean[:2]]
    out = inp.restore(meshed)
    path = inp.save(tmp_path / f"{name}.pt")
    again = registry.build("inpainter", name, {**opts, "weights": str(path)})
    np.testing.assert_array_equal(np.stack(again.restore(meshed)), np.stack(out))
    wrong = registry.build("inpainter", name, {**opts, "width": 4})
    with pytest.raises(ValueError, match="width"):
        wrong.load(path)
    # given as weights, the checkpoint's own width wins over the option
    sized = registry.build("inpainter", name, {**opts, "width": 4, "weights": str(path)})
    assert sized.options.width == 8
    np.testing.assert_array_equal(np.stack(sized.restore(meshed)), np.stack(out))
    assert again.train_identities is None  # fit() alone knows no identities
    inp.train_identities = frozenset({"alice", "bob"})
    named = registry.build("inpainter", name, {**opts, "weights": str(inp.save(tmp_path / "named.pt"))})
    assert named.train_identities == {"alice", "bob"}
    if name == "multitask_convnet":
        masks = inp.estimate_masks(meshed)
        assert masks[0].shape == meshed[0].shape[:2] and set(np.unique(masks[0])) <= {0, 1}


def test_demeshnet_identity_loss_uses_the_real_casia_mobilefacenet(registry):
    pytest.importorskip("torch")
    from tests.conftest import need_data

    need_data("weights/mobilefacenet/068.ckpt")
    ident = registry.build("backbone", "mobilefacenet", {"weights": "casia"})
    inp = registry.build("inpainter", "demeshnet", {"device": "cpu", "width": 8, "batch_size": 2})
    assert inp.uses_identity
    with pytest.raises(ValueError, match="identity"):
        inp.fit([_face(0, 64), _face(1, 64)], steps=1, progress=False)
    hist = inp.fit([_face(s, 64) for s in range(4)], rng_seed=0, steps=2, progress=False, identity_embedder=ident)
    cos = hist["terms"]["identity_cos"]
    assert all(-1 <= c <= 1 for c in cos)
    assert all(not p.requires_grad for p in ident.parameters())  # frozen


def test_budget_aware_schedule_decays_by_time_or_steps():
    pytest.importorskip("torch")
    from facebench_plugins.inpainters._torch import cosine_factor

    assert cosine_factor(0, 100) == pytest.approx(1.0)
    assert cosine_factor(50, 100) == pytest.approx(0.05 + 0.95 * 0.5)
    assert cosine_factor(100, 100) == pytest.approx(0.05)
    # the time budget is half spent after 10 of 100 steps: the schedule is half way
    assert cosine_factor(10, 100, elapsed=30.0, time_budget=60.0) == pytest.approx(0.05 + 0.95 * 0.5)
    assert cosine_factor(10, 100, elapsed=90.0, time_budget=60.0) == pytest.approx(0.05)  # never below the floor
    assert cosine_factor(60, 100, elapsed=1.0, time_budget=60.0) == pytest.approx(cosine_factor(60, 100))


@pytest.mark.parametrize("name", ["telea", "navier_stokes", "multitask_convnet", "demeshnet"])
def test_restore_with_masks_is_restore_plus_estimate_in_one_pass(registry, name):
    opts = {"device": "cpu", "width": 8} if name in ("multitask_convnet", "demeshnet") else {}
    inp = registry.build("inpainter", name, opts)
    meshed = [mesh_image(_face(s, 64), s)[0] for s in range(3)]
    out, est = inp.restore_with_masks(meshed)
    for a, b in zip(out, inp.restore(meshed)):
        np.testing.assert_array_equal(a, b)
    if hasattr(inp, "estimate_masks"):
        for a, b in zip(est, inp.estimate_masks(meshed)):
            np.testing.assert_array_equal(a, b)
    else:
        assert est is None  # demeshnet predicts no mask
