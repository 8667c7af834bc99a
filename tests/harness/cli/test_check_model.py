"""``harness check-model``: the model pre-load test, on checkpoints the torch
engine writes for a tiny registered backbone, and on the real MobileFaceNet
checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.cli.check_model import command
from harness.hookspecs import hookimpl
from harness.registry import Registry, reset_registry
from harness.specs import BackboneSpec
from tests.conftest import need_data

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")


@dataclass(frozen=True)
class CheckNetOptions:
    embedding_size: int = 16


class CheckNet(torch.nn.Module):
    def __init__(self, emb: int = 16) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 16 * 16, emb)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))


def _build_checknet(opts: CheckNetOptions) -> CheckNet:
    return CheckNet(opts.embedding_size)


class _TestPlugin:
    @hookimpl
    def register_backbones(self):
        return [BackboneSpec(name="checknet", summary="tiny CNN for check-model tests",
                             factory=_build_checknet, framework="torch", options=CheckNetOptions,
                             input_size=(32, 32), embedding_size=16)]


@pytest.fixture
def registry():
    import facebench_plugins.engines as engines

    reg = Registry(load_entry_points=False, plugins=[engines, _TestPlugin()])
    reset_registry(reg)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield reg
    torch.set_num_threads(torch_threads)
    reset_registry(None)


@pytest.fixture
def face(tmp_path) -> Path:
    """A drawn 60x50 image (the default real image is tested on its own)."""
    path = tmp_path / "face.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 255, (60, 50, 3), dtype=np.uint8))
    return path


@pytest.fixture
def trained_checkpoint(registry, tmp_path) -> Path:
    """A facebench training checkpoint of checknet, written by the torch engine."""
    from harness.config import TrainSettings
    from harness.types import ImageSet

    engine = registry.build("engine", "torch")
    engine.seed_everything(0)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(16)]
    data = ImageSet(keys=[str(i) for i in range(16)], labels=np.arange(16) % 4,
                    loader=lambda k: images[int(k)])

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4, 16) * 0.01)

        def forward(self, emb, labels):
            return torch.nn.functional.cross_entropy(emb @ self.weight.t(), labels)

    out = engine.train(registry.build("backbone", "checknet"), Loss(), data,
                       backbone_spec=registry.get("backbone", "checknet"),
                       settings=TrainSettings(batch_size=8, max_steps=2, lr=0.01),
                       workdir=tmp_path / "run", seed=0, progress=False)
    return out.checkpoint


def _invoke(*args: str):
    return CliRunner().invoke(command, list(args), catch_exceptions=False)


def test_engine_checkpoint_loads_and_embeds(trained_checkpoint, face):
    r = _invoke(str(trained_checkpoint), "--backbone", "checknet", "--image", str(face), "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] is True and report["problems"] == []
    assert report["weights_found_at"] == "['model']"
    assert report["match"] == {"matched": 9, "missing": [], "unexpected": [], "mismatched": []}
    assert report["input_size"] == [32, 32] and report["image"]["size"] == [60, 50]
    emb = report["embedding"]
    assert emb["size"] == 16 and emb["norm"] > 0 and emb["nan"] == emb["inf"] == 0
    assert report["speed_ms_per_image"]["batch_1"] > 0 and report["speed_ms_per_image"]["batch_8"] > 0
    assert report["device"] == ("cuda" if torch.cuda.is_available() else "cpu")

    table = _invoke(str(trained_checkpoint), "--backbone", "checknet", "--image", str(face))
    assert table.exit_code == 0
    for row in ("match", "9 tensors match, 0 missing", "embedding", "ms/img at batch 8", "OK"):
        assert row in table.output


def test_other_checkpoint_layouts_load(registry, tmp_path, face):
    state = CheckNet().state_dict()
    layouts = {
        "bare.pt": state,
        "ddp.pt": {f"module.{k}": v for k, v in state.items()},
        "net.ckpt": {"epoch": 3, "net_state_dict": state},
        "sd.pth": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
    }
    for name, obj in layouts.items():
        torch.save(obj, tmp_path / name)
        r = _invoke(str(tmp_path / name), "--backbone", "checknet", "--image", str(face), "--json")
        assert r.exit_code == 0, (name, r.output)
        assert json.loads(r.output)["match"]["matched"] == 9


def test_mismatched_checkpoint_fails_with_every_difference_listed(registry, tmp_path, face):
    state = CheckNet(emb=8).state_dict()
    state.pop("bn.running_var")
    state["head.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "other.pt")
    r = _invoke(str(tmp_path / "other.pt"), "--backbone", "checknet", "--image", str(face))
    assert r.exit_code == 1
    assert "fc.weight: (8, 1024) vs (16, 1024)" in r.output
    assert "fc.bias: (8,) vs (16,)" in r.output
    assert "missing from the checkpoint" in r.output and "bn.running_var" in r.output
    assert "unexpected in the checkpoint" in r.output and "head.weight" in r.output
    assert "FAILED" in r.output and "ms/img" not in r.output  # no forward on a bad load

    partial = _invoke(str(tmp_path / "other.pt"), "--backbone", "checknet", "--image", str(face),
                      "--allow-partial", "--json")
    assert partial.exit_code == 0, partial.output
    report = json.loads(partial.output)
    assert report["ok"] is True and report["problems"] == ["weights do not match the architecture"]
    assert {m["key"] for m in report["match"]["mismatched"]} == {"fc.weight", "fc.bias"}
    assert report["embedding"]["size"] == 16

    # with the right option the same file fits
    ok = _invoke(str(tmp_path / "other.pt"), "--backbone", "checknet", "-o", "checknet.embedding_size=8",
                 "--image", str(face), "--allow-partial", "--json")
    assert json.loads(ok.output)["match"]["mismatched"] == []


def test_user_errors_are_one_clear_message(registry, tmp_path, face, capsys):
    torch.save(CheckNet().state_dict(), tmp_path / "w.pt")
    assert main(["check-model", str(tmp_path / "nope.pt"), "--backbone", "checknet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["check-model", str(tmp_path / "w.pt"), "--backbone", "checknet",
                 "-o", "resnet20.width=2", "--image", str(face)]) == 2
    assert "-o checknet.KEY=VALUE" in capsys.readouterr().err
    assert main(["check-model", str(tmp_path / "w.pt"), "--backbone", "checknett"]) == 2
    assert "did you mean 'checknet'" in capsys.readouterr().err
    torch.save({"epoch": 1, "note": "no weights"}, tmp_path / "empty.pt")
    assert main(["check-model", str(tmp_path / "empty.pt"), "--backbone", "checknet"]) == 2
    assert "holds no network weights" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["check-model", str(tmp_path / "junk.pt"), "--backbone", "checknet"]) == 2
    err = capsys.readouterr().err
    assert "is not a PyTorch weights file" in err and "weights_only=False" not in err


def test_default_image_is_the_first_shared_identity(trained_checkpoint):
    root = need_data("images/identities")
    r = _invoke(str(trained_checkpoint), "--backbone", "checknet", "--json")
    assert r.exit_code == 0, r.output
    first = sorted(root.glob("*/1.jpg"))[0]
    assert json.loads(r.output)["image"]["path"] == str(first)


def test_real_mobilefacenet_checkpoint(fresh_registry):
    ckpt = need_data("weights/mobilefacenet/068.ckpt")
    need_data("images/identities")
    if "mobilefacenet" not in fresh_registry.names("backbone"):
        pytest.skip("the mobilefacenet backbone is not registered")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = _invoke(str(ckpt), "--backbone", "mobilefacenet", "-o", "mobilefacenet.input_size=112,96",
                    "--json")
        assert r.exit_code == 0, r.output
        report = json.loads(r.output)
        assert report["weights_found_at"] == "['net_state_dict']"
        assert report["match"]["matched"] == 333 and report["match"]["mismatched"] == []
        assert report["embedding"]["size"] == 128 and report["embedding"]["nan"] == 0
        assert report["embedding"]["norm"] > 0
        # at the spec's default 112x112 the global depthwise conv cannot take these weights
        bad = _invoke(str(ckpt), "--backbone", "mobilefacenet")
        assert bad.exit_code == 1
        assert "linear7.conv.weight: (512, 1, 7, 6) vs (512, 1, 7, 7)" in bad.output
    finally:
        torch.set_num_threads(threads)
