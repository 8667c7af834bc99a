"""Published checkpoints load into facebench's backbones and give the same outputs.

No real arcface_torch or facenet-pytorch weights exist here.  Each test
builds a reference network with the *published* module names and forward
(written below from the public layer layouts), fills it with random weights
and BatchNorm statistics, saves its state dict under the original key names
(bare, with ``module.`` prefixes, or wrapped), loads that file through
``-o <backbone>.weights=PATH`` and compares the outputs in eval mode.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from harness.errors import ConfigError, DataError  # noqa: E402

TOL = 1e-5


# ------------------------------------------------ arcface_torch iresnet layout
class RefIBlock(nn.Module):
    def __init__(self, cin, cout, stride, downsample):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = downsample

    def forward(self, x):
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (self.downsample(x) if self.downsample is not None else x)


class RefIResNet(nn.Module):
    """arcface_torch ``IResNet`` names: conv1/bn1/prelu, layer1..4, bn2, dropout, fc, features."""

    def __init__(self, layers, num_features=512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for i, (cout, n) in enumerate(zip((64, 128, 256, 512), layers), 1):
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout, eps=1e-5))
            blocks = [RefIBlock(cin, cout, 2, down)] + [RefIBlock(cout, cout, 1, None) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = cout
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


# ------------------------------------------ facenet-pytorch InceptionResnetV1
class RefBasicConv2d(nn.Module):
    def __init__(self, cin, cout, k, s, p=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def _seq(*specs):
    return nn.Sequential(*[RefBasicConv2d(*s) for s in specs])


class RefResidual(nn.Module):
    """Block35 / Block17 / Block8: branch0..n, conv2d, scale, optional ReLU."""

    def __init__(self, width, branches, concat, scale, relu=True):
        super().__init__()
        self.scale, self.use_relu = scale, relu
        for i, b in enumerate(branches):
            setattr(self, f"branch{i}", b)
        self.n = len(branches)
        self.conv2d = nn.Conv2d(concat, width, 1, 1)

    def forward(self, x):
        out = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)
        out = self.conv2d(out) * self.scale + x
        return F.relu(out) if self.use_relu else out


class RefMixed(nn.Module):
    def __init__(self, branches):
        super().__init__()
        for i, b in enumerate(branches):
            setattr(self, f"branch{i}", b)
        self.n = len(branches)

    def forward(self, x):
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n)], 1)


def _block35():
    return RefResidual(256, [RefBasicConv2d(256, 32, 1, 1), _seq((256, 32, 1, 1), (32, 32, 3, 1, 1)),
                             _seq((256, 32, 1, 1), (32, 32, 3, 1, 1), (32, 32, 3, 1, 1))], 96, 0.17)


def _block17():
    return RefResidual(896, [RefBasicConv2d(896, 128, 1, 1),
                             _seq((896, 128, 1, 1), (128, 128, (1, 7), 1, (0, 3)), (128, 128, (7, 1), 1, (3, 0)))],
                       256, 0.10)


def _block8(scale=0.20, relu=True):
    return RefResidual(1792, [RefBasicConv2d(1792, 192, 1, 1),
                              _seq((1792, 192, 1, 1), (192, 192, (1, 3), 1, (0, 1)), (192, 192, (3, 1), 1, (1, 0)))],
                       384, scale, relu)


class RefInceptionResnetV1(nn.Module):
    """facenet-pytorch names: conv2d_1a ... conv2d_4b, repeat_1..3, mixed_6a/7a, block8, last_linear, last_bn."""

    def __init__(self, classes=0):
        super().__init__()
        self.conv2d_1a = RefBasicConv2d(3, 32, 3, 2)
        self.conv2d_2a = RefBasicConv2d(32, 32, 3, 1)
        self.conv2d_2b = RefBasicConv2d(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = RefBasicConv2d(64, 80, 1, 1)
        self.conv2d_4a = RefBasicConv2d(80, 192, 3, 1)
        self.conv2d_4b = RefBasicConv2d(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*[_block35() for _ in range(5)])
        self.mixed_6a = RefMixed([RefBasicConv2d(256, 384, 3, 2),
                                  _seq((256, 192, 1, 1), (192, 192, 3, 1, 1), (192, 256, 3, 2)), nn.MaxPool2d(3, 2)])
        self.repeat_2 = nn.Sequential(*[_block17() for _ in range(10)])
        self.mixed_7a = RefMixed([_seq((896, 256, 1, 1), (256, 384, 3, 2)), _seq((896, 256, 1, 1), (256, 256, 3, 2)),
                                  _seq((896, 256, 1, 1), (256, 256, 3, 1, 1), (256, 256, 3, 2)), nn.MaxPool2d(3, 2)])
        self.repeat_3 = nn.Sequential(*[_block8() for _ in range(5)])
        self.block8 = _block8(1.0, relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.6)
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=0.001)
        if classes:
            self.logits = nn.Linear(512, classes)

    def forward(self, x):
        for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b",
                     "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8", "avgpool_1a"):
            x = getattr(self, name)(x)
        x = self.last_bn(self.last_linear(self.dropout(x).view(len(x), -1)))
        return F.normalize(x, p=2, dim=1)  # facenet-pytorch's embedding output


# ----------------------------------------------------------------- helpers
def _randomise(model: nn.Module, seed: int) -> dict:
    """Random weights and BN statistics (so a swapped BN or conv shows), as a state dict."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, t in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = 0.8 + 0.4 * torch.rand(t.shape, generator=g)
        elif k.endswith("running_mean") or k.endswith("bias"):
            state[k] = 0.1 * torch.randn(t.shape, generator=g)
        elif t.ndim == 1:  # BN / PReLU weights
            state[k] = 0.8 + 0.4 * torch.rand(t.shape, generator=g) if "prelu" not in k else 0.3 * torch.rand(
                t.shape, generator=g)
        else:
            fan_in = t[0].numel()
            state[k] = torch.randn(t.shape, generator=g) * (1.0 / fan_in) ** 0.5
    model.load_state_dict(state)
    return state


def _close(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the output scale (>= 1)."""
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


def _build(name, options):
    from harness.registry import Registry

    return Registry().build("backbone", name, options)


@pytest.mark.parametrize("depth, layers", [(50, (3, 4, 14, 3)), (100, (3, 13, 30, 3))])
def test_arcface_torch_iresnet_into_lresnet(tmp_path, depth, layers):
    torch.manual_seed(0)
    ref = RefIResNet(layers)
    state = _randomise(ref, depth)
    ref.eval()
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    model = _build(f"lresnet{depth}", {"weights": str(path)})
    assert not model.training
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), model(x)
    assert got.shape == (2, 512)
    assert _close(got, want) <= TOL


def test_facenet_pytorch_inception_resnet_v1(tmp_path):
    torch.manual_seed(0)
    ref = RefInceptionResnetV1(classes=10)  # published files carry the classifier; it is dropped
    state = _randomise(ref, 3)
    ref.eval()
    path = tmp_path / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    model = _build("inception_resnet_v1", {"weights": str(path)})
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = ref(x), F.normalize(model(x), p=2, dim=1)
    assert got.shape == (2, 512)
    assert _close(got, want) <= TOL


def test_module_prefix_and_nested_wrappers_are_accepted(tmp_path):
    ref = RefIResNet((3, 4, 14, 3))
    state = _randomise(ref, 5)
    ref.eval()
    x = torch.randn(1, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = ref(x)
    prefixed = {f"module.{k}": v for k, v in state.items()}
    for i, obj in enumerate([prefixed, {"state_dict": prefixed}, {"epoch": 3, "model": {"state_dict": state}}]):
        path = tmp_path / f"ckpt{i}.pth"
        torch.save(obj, path)
        with torch.no_grad():
            got = _build("lresnet50", {"weights": str(path)})(x)
        assert _close(got, want) <= TOL, i


def test_facebench_own_state_dict_loads_as_is(tmp_path):
    a = _build("inception_resnet_v1", {})
    _randomise(a, 9)
    a.eval()
    path = tmp_path / "own.pt"
    torch.save({"model": a.state_dict()}, path)
    b = _build("inception_resnet_v1", {"weights": str(path)})
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        assert _close(b(x), a(x)) == 0.0


def test_key_mappings_cover_every_tensor_one_to_one():
    from facebench_plugins.backbones._import import facenet_key, iresnet_key

    for ref, name, mapper in [(RefIResNet((3, 13, 30, 3)), "lresnet100", iresnet_key),
                              (RefInceptionResnetV1(), "inception_resnet_v1", facenet_key)]:
        own = _build(name, {}).state_dict()
        theirs = ref.state_dict()
        mapped = {mapper(k): k for k in theirs}
        assert set(mapped) == set(own), name
        assert all(tuple(theirs[v].shape) == tuple(own[k].shape) for k, v in mapped.items())


def test_wrong_depth_names_first_differing_key_and_shape(tmp_path):
    state = _randomise(RefIResNet((3, 4, 14, 3)), 0)
    path = tmp_path / "r50.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"lresnet100\.weights=.*no tensor for 'stages\.1\.4\.body\.0\.weight' "
                                          r"\(128\)") as info:
        _build("lresnet100", {"weights": str(path)})
    assert "\n" not in str(info.value)


def test_wrong_embedding_size_names_the_key_and_both_shapes(tmp_path):
    state = _randomise(RefIResNet((3, 4, 14, 3), num_features=256), 0)
    path = tmp_path / "r50_256.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"checkpoint key 'fc\.weight' has shape \(256, 25088\), the model "
                                          r"expects \(512, 25088\) for 'fc\.weight'"):
        _build("lresnet50", {"weights": str(path)})


def test_a_foreign_key_is_named(tmp_path):
    state = _randomise(RefIResNet((3, 4, 14, 3)), 0)
    state["layer1.0.se.fc1.weight"] = torch.zeros(4, 64)
    path = tmp_path / "se.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"checkpoint key 'layer1\.0\.se\.fc1\.weight' \(4, 64\) has no counterpart"):
        _build("lresnet50", {"weights": str(path)})


def test_missing_file_and_non_state_dict(tmp_path):
    with pytest.raises(ConfigError, match=r"inception_resnet_v1\.weights=.*no such file"):
        _build("inception_resnet_v1", {"weights": str(tmp_path / "nope.pt")})
    path = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(DataError, match="holds no state dict"):
        _build("lresnet50", {"weights": str(path)})


def test_pickled_objects_are_refused(tmp_path):
    """weights_only=True: a checkpoint that needs arbitrary unpickling is a DataError, never run."""
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": np.float64}}, path)  # a class reference: not weights-only data
    with pytest.raises(DataError, match=r"evil\.pth") as info:
        _build("lresnet50", {"weights": str(path)})
    assert "holds no state dict" not in str(info.value)  # refused at load, not unpickled and inspected
    assert "weights_only=False" not in str(info.value)  # never advise loading code
