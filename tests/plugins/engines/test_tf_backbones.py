"""The tf engine's Keras backbones are the torch ones, layer for layer.

For every backbone the ``tf`` engine adapts (its spec's ``meta["adapts"]``):
the parameter count equals torch's (and the spec's), the FLOPs its model card
states equal torch's flop counter, and after copying a torch network's weights
(with non-trivial BatchNorm statistics and PReLU slopes) the Keras network
gives the same embeddings of real LFW faces to 1e-4.  MobileFaceNet is checked
with its real CASIA-WebFace weights as well.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_data

tf = pytest.importorskip("tensorflow", reason="tensorflow is not installed (pip install 'facebench[tf]')")
torch = pytest.importorskip("torch")

from facebench_plugins.engines._tf_backbones import (  # noqa: E402
    build_keras_backbone,
    keras_flops,
    keras_param_count,
    transfer_weights,
)
from harness.registry import get_registry  # noqa: E402

REGISTRY = get_registry()
BACKBONES = REGISTRY.get("engine", "tf").meta["adapts"]["backbone"]
#: a few LFW funneled faces (different people), centre-cropped to the face
FACES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "George_W_Bush/George_W_Bush_0007.jpg",
         "Colin_Powell/Colin_Powell_0040.jpg"]


def _faces(size: tuple[int, int]) -> np.ndarray:
    """Real LFW funneled faces, centre 130x130 (the face), resized to (H, W), as (N, H, W, 3) uint8."""
    import cv2

    root = need_data("lfw_home/lfw_funneled")
    out = []
    for rel in FACES:
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        assert img is not None, rel
        img = cv2.cvtColor(img[60:190, 60:190], cv2.COLOR_BGR2RGB)
        out.append(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def _perturb(model, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics / affine and PReLU slopes, so every mapping is exercised.

    Scales stay near 1 (a residual body's last BatchNorm near its small init) so deep nets stay finite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                last = name.endswith("body.5")  # LResNet's zero-initialised last BN of each unit
                m.weight.copy_(torch.rand(n, generator=g) * (0.2 if last else 0.5) + (0.0 if last else 0.75))
                m.bias.copy_(torch.randn(n, generator=g) * 0.05)
            elif isinstance(m, torch.nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.3)


def _torch_flops(model, size) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *size))
    return int(counter.get_total_flops())


def _compare(tm, km, faces: np.ndarray, mean, std) -> None:
    x = (faces.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    with torch.no_grad():
        want = tm.eval()(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    got = km(x, training=False).numpy()
    assert got.shape == want.shape
    scale = float(np.abs(want).max())
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, scale), (np.abs(got - want).max(), scale)
    unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
    assert np.abs(unit(got) - unit(want)).max() <= 1e-4


def test_every_builtin_backbone_has_a_keras_twin():
    builtin = {s.name for s in REGISTRY.specs("backbone") if s.factory.startswith("facebench_plugins.")}
    assert builtin == set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_weight_transfer_gives_the_same_embeddings(name):
    torch.set_num_threads(1)
    spec = REGISTRY.get("backbone", name)
    opts = spec.make_options({})
    tm = REGISTRY.build("backbone", name)
    km = build_keras_backbone(name, opts)
    n_torch = sum(p.numel() for p in tm.parameters())
    assert keras_param_count(km) == n_torch == spec.meta["params"]
    assert keras_flops(km) == _torch_flops(tm.eval(), opts.input_size)
    _perturb(tm)
    assert transfer_weights(tm, km) > 0
    _compare(tm, km, _faces(opts.input_size), spec.mean, spec.std)


def test_pretrained_mobilefacenet_transfers_exactly():
    """The real CASIA-WebFace MobileFaceNet (112x96) gives the same features in Keras."""
    need_data("weights/mobilefacenet/068.ckpt")
    spec = REGISTRY.get("backbone", "mobilefacenet")
    opts = spec.make_options({"weights": "casia"})
    tm = REGISTRY.build("backbone", "mobilefacenet", {"weights": "casia"})
    km = build_keras_backbone("mobilefacenet", opts)
    transfer_weights(tm, km)
    variant = spec.meta["variants"]["casia"]
    _compare(tm, km, _faces(opts.input_size), variant["mean"], variant["std"])


def test_options_shape_the_keras_network_like_the_torch_one():
    """Input size, embedding size, BatchNorm and dropout options reach both builds."""
    opts = REGISTRY.get("backbone", "resnet20").make_options(
        {"input_size": (40, 48), "embedding_size": 64, "batch_norm": True, "dropout": 0.2})
    tm = REGISTRY.build("backbone", "resnet20", {"input_size": (40, 48), "embedding_size": 64,
                                                 "batch_norm": True, "dropout": 0.2})
    km = build_keras_backbone("resnet20", opts)
    assert km.input_shape == (None, 40, 48, 3) and km.output_shape == (None, 64)
    assert keras_param_count(km) == sum(p.numel() for p in tm.parameters())
    _perturb(tm, seed=1)
    transfer_weights(tm, km)
    _compare(tm, km, _faces((40, 48)), (127.5,) * 3, (128.0,) * 3)


def test_transfer_refuses_a_network_of_another_shape():
    from harness.errors import ConfigError

    small = REGISTRY.get("backbone", "resnet20").make_options({"input_size": 32})
    tm = REGISTRY.build("backbone", "resnet20", {"input_size": 48})
    with pytest.raises(ConfigError, match="layer fc: Keras shapes"):
        transfer_weights(tm, build_keras_backbone("resnet20", small))
    with pytest.raises(ConfigError, match="torch-only modules"):
        transfer_weights(tm, build_keras_backbone("mobilefacenet", REGISTRY.get("backbone", "mobilefacenet")
                                                  .make_options({"input_size": 32})))
    with pytest.raises(ConfigError, match="no Keras version of backbone 'nonet'"):
        build_keras_backbone("nonet", small)
