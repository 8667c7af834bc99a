"""Backbone specs: metadata readable without torch, sizes recounted, shapes, options."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from harness.registry import Registry
from harness.specs import OptionError

from facebench_plugins.backbones._profile import count_params, profile

BUILTIN = ["inception_resnet_v1", "lresnet100", "lresnet50", "mobilefacenet", "resnet20", "resnet36"]

_REGISTRY = Registry()
ALL_BACKBONES = _REGISTRY.names("backbone")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return _REGISTRY


def test_builtin_backbones_are_registered(registry):
    assert set(BUILTIN) <= set(registry.names("backbone"))
    for name in BUILTIN:
        assert registry.owner("backbone", name) == "backbones"
        spec = registry.get("backbone", name)
        assert spec.framework == "torch"
        assert spec.paper and spec.license
        assert spec.factory.startswith("facebench_plugins.backbones.")


def test_spec_module_does_not_import_torch():
    code = (
        "import sys; import facebench_plugins.backbones as b, facebench_plugins.losses as l; "
        "b.specs(); l.specs(); "
        "bad = [m for m in ('torch', 'cv2', 'tensorflow') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_profile_counts_a_known_network():
    # conv 3->4, 3x3, stride 1, pad 1 on 5x6: 4*5*6 outputs x 3*9 MACs; FC 120 -> 2
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, bias=True),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),  # depthwise: 9 MACs per output
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 5 * 6, 2),
    )
    p = profile(net, (5, 6))
    assert p.macs == 120 * 27 + 120 * 9 + 120 * 2
    assert p.params == (4 * 27 + 4) + 4 * 9 + (120 * 2 + 2)
    assert p.params == count_params(net)


@pytest.mark.parametrize("name", BUILTIN)
def test_meta_params_macs_and_shape_match_a_measured_forward(registry, name):
    """One forward pass at the default input size: counts and the embedding shape."""
    spec = registry.get("backbone", name)
    model = registry.build("backbone", name)
    measured = profile(model, spec.input_size)
    assert measured.params == spec.meta["params"], f"{name}: meta params stale"
    assert measured.macs == spec.meta["macs"], f"{name}: meta macs stale"
    assert measured.output_shape == (spec.embedding_size,)
    assert model.embedding_size == spec.embedding_size
    assert tuple(model.input_size) == tuple(spec.input_size)


@pytest.mark.parametrize(
    "name, params, macs",
    [
        ("lresnet50", 43.59e6, 6.309e9),  # ArcFace / insightface IR-50 at 112x112
        ("lresnet100", 65.16e6, 12.090e9),  # IR-100
    ],
)
def test_lresnet_matches_published_size(registry, name, params, macs):
    spec = registry.get("backbone", name)
    assert spec.meta["params"] == pytest.approx(params, rel=0.01)
    assert spec.meta["macs"] == pytest.approx(macs, rel=0.01)


def test_mobilefacenet_matches_published_size(registry):
    """Paper: 0.99 M parameters and 221 M MAdds at 112x112.  The paper counts the
    deployed network, BatchNorm folded into the convolutions (one bias per BN
    channel instead of scale + shift); unfolded it is 1.003 M."""
    spec = registry.get("backbone", "mobilefacenet")
    model = registry.build("backbone", "mobilefacenet")
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    folded = spec.meta["params"] - sum(m.num_features for m in bn)
    assert folded == pytest.approx(0.99e6, rel=0.01)
    assert spec.meta["params"] == pytest.approx(1.0e6, rel=0.01)
    assert spec.meta["macs"] == pytest.approx(0.221e9, rel=0.01)


@pytest.mark.parametrize("name", [n for n in ALL_BACKBONES if n not in BUILTIN])
def test_third_party_backbone_gives_declared_embedding_shape(registry, name):
    """Built-ins are checked by the measured-forward test above; this covers
    any other installed backbone plugin."""
    spec = registry.get("backbone", name)
    model = registry.build("backbone", name).eval()
    h, w = spec.input_size
    with torch.no_grad():
        out = model(torch.randn(2, 3, h, w))
    assert out.shape == (2, spec.embedding_size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", BUILTIN)
def test_smallest_input_size_works_and_smaller_is_refused(registry, name):
    spec = registry.get("backbone", name)
    low = spec.meta["min_input_size"]
    model = registry.build("backbone", name, {"input_size": str(low), "embedding_size": "32"})
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, low, low))
    assert out.shape == (2, 32)
    with pytest.raises(OptionError, match="at least"):
        registry.validate_options("backbone", name, {"input_size": str(low - 1)})


def test_input_size_option_parses_square_and_pairs(registry):
    opts = registry.validate_options("backbone", "lresnet50", {"input_size": "112,96"})
    assert opts.input_size == (112, 96)
    opts = registry.validate_options("backbone", "lresnet50", {"input_size": "96"})
    assert opts.input_size == (96, 96)
    with pytest.raises(OptionError, match="positive"):
        registry.validate_options("backbone", "lresnet50", {"input_size": "0,112"})
    with pytest.raises(OptionError, match="embedding_size"):
        registry.validate_options("backbone", "resnet20", {"embedding_size": "-4"})
    with pytest.raises(OptionError, match="dropout"):
        registry.validate_options("backbone", "lresnet100", {"dropout": "1.5"})
    with pytest.raises(OptionError, match="no option"):
        registry.validate_options("backbone", "mobilefacenet", {"depth": "3"})


def test_non_square_input_sizes_the_head(registry):
    model = registry.build("backbone", "resnet20", {"input_size": "48,40"}).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 48, 40)).shape == (2, 512)
    # 48x40 -> 3x3 after four ceil-halvings: 512 * 3 * 3 inputs to the FC
    assert model.fc.in_features == 512 * 3 * 3


def test_lresnet_head_is_bn_dropout_fc_bn_with_frozen_last_scale(registry):
    model = registry.build("backbone", "lresnet50", {"dropout": "0.4", "input_size": "32"})
    assert isinstance(model.bn, torch.nn.BatchNorm2d)
    assert isinstance(model.dropout, torch.nn.Dropout) and model.dropout.p == 0.4
    assert isinstance(model.features, torch.nn.BatchNorm1d)
    assert not model.features.weight.requires_grad
    units = [len(stage) for stage in model.stages]
    assert units == [3, 4, 14, 3]
    assert [len(s) for s in registry.build("backbone", "lresnet100", {"input_size": "16"}).stages] == [3, 13, 30, 3]


def test_mobilefacenet_casia_options(registry):
    opts = registry.validate_options("backbone", "mobilefacenet", {"weights": "casia"})
    assert opts.input_size == (112, 96) and opts.embedding_size == 128
    assert registry.validate_options("backbone", "mobilefacenet", {}).input_size == (112, 112)
    with pytest.raises(OptionError, match="112x96"):
        registry.validate_options("backbone", "mobilefacenet", {"weights": "casia", "input_size": "112"})
    with pytest.raises(OptionError, match="none, casia|'none' or 'casia'|expected one of"):
        registry.validate_options("backbone", "mobilefacenet", {"weights": "vggface2"})
    variant = registry.get("backbone", "mobilefacenet").meta["variants"]["casia"]
    assert variant["flip_concat"] is True
    assert tuple(variant["input_size"]) == (112, 96)
