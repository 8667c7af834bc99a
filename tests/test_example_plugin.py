"""The example third-party plugin, pip-installed for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "facebench-example-plugin"


@pytest.fixture(scope="module")
def installed_example():
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", str(EXAMPLE)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return True


def harness(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_example_plugin_appears_in_list_plugins_and_dry_run(installed_example):
    env = {"FACEBENCH_PLUGINS": "example"}
    listed = json.loads(harness("list", "--json", env=env).stdout)
    bb = {b["name"]: b for b in listed["backbone"]}
    assert bb["example_tinynet"]["plugin"] == "example"
    assert bb["example_tinynet"]["embedding_size"] == 64
    assert "example_normface" in {l["name"] for l in listed["loss"]}

    plugins = json.loads(harness("plugins", "--json", env=env).stdout)
    ex = [p for p in plugins["plugins"] if p["name"] == "example"]
    assert ex and ex[0]["dist"] == "facebench-example-plugin" and not ex[0]["builtin"]
    assert "register_backbones" in ex[0]["hooks"]

    dry = harness("run", "--dry-run", "--json", "--backbone", "example_tinynet", "--loss", "example_normface",
                  "-o", "example_tinynet.width=8", env=env)
    assert dry.returncode == 0, dry.stderr
    (run,) = json.loads(dry.stdout)
    assert run["components"] == {"backbone": "example_tinynet", "loss": "example_normface"}
    assert run["options"] == {"example_tinynet": {"width": "8"}}

    hello = harness("example-hello", "--name", "facebench", env=env)
    assert hello.returncode == 0 and "hello facebench" in hello.stdout


def test_allow_list_and_disable_hide_the_example(installed_example):
    for env in ({"FACEBENCH_PLUGINS": ""}, {"FACEBENCH_DISABLE_PLUGINS": "example"}):
        listed = json.loads(harness("list", "backbone", "--json", env=env).stdout)
        assert "example_tinynet" not in {b["name"] for b in listed["backbone"]}


def test_example_components_build_and_train_a_step(installed_example):
    torch = pytest.importorskip("torch", reason="the example plugin's network needs torch")
    from harness.registry import Registry

    torch.manual_seed(0)
    reg = Registry()
    net = reg.build("backbone", "example_tinynet", {"width": "8"})
    loss = reg.build("loss", "example_normface", {}, embedding_size=64, num_classes=3)
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    opt = torch.optim.SGD([*net.parameters(), *loss.parameters()], lr=0.01, momentum=0.9)
    first = None
    for _ in range(20):
        opt.zero_grad()
        value = loss(net(x), y)
        value.backward()
        opt.step()
        first = value.item() if first is None else first
    assert torch.isfinite(value) and value.item() < first
