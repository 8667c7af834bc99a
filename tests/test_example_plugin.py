"""The example third-party plugin, pip-installed for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    assert run["options"] == {"example_tinynet": {"width": 8}}  # validated, typed (one hash per setting)

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


def test_example_recognizer_and_dataset_are_listed(installed_example):
    env = {"FACEBENCH_PLUGINS": "example"}
    listed = json.loads(harness("list", "--json", env=env).stdout)
    rec = {r["name"]: r for r in listed["recognizer"]}["example_pixels"]
    assert rec["plugin"] == "example" and rec["framework"] == "none" and rec["available"]
    assert (rec["alignment"], rec["input_size"], rec["embedding_size"], rec["distance"]) == \
        ("arcface_112", [16, 16], 256, "cosine")
    ds = {d["name"]: d for d in listed["dataset"]}["example_blobs"]
    assert ds["plugin"] == "example" and ds["tasks"] == ["train", "verification"] and ds["synthetic"] is True


def test_example_dataset_builds_the_documented_records(installed_example):
    from harness.errors import DataError
    from harness.registry import Registry
    from harness.specs import OptionError
    from harness.types import ImageSet, PairSet, Recognizer, TrainData, VerificationData

    reg = Registry()
    ds = reg.build("dataset", "example_blobs", {"identities": "6", "folds": "3"})
    assert isinstance(ds, TrainData) and isinstance(ds, VerificationData)
    train = ds.train_set()
    assert isinstance(train, ImageSet) and len(train) == 24 and train.num_classes == 6 and train.synthetic
    img = train.load(5)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, train.load(5))  # deterministic from the key
    pairs = ds.verification()
    assert isinstance(pairs, PairSet) and sorted(set(pairs.folds.tolist())) == [0, 1, 2]
    assert pairs.issame.sum() == (~pairs.issame).sum() == 3 * 2 * 6  # per fold: 2 ids x C(4, 2)
    same_label = train.labels[pairs.pairs[:, 0]] == train.labels[pairs.pairs[:, 1]]
    np.testing.assert_array_equal(same_label, pairs.issame)
    with pytest.raises(DataError, match="reads no files"):
        reg.build("dataset", "example_blobs", {}, path="/some/folder")
    with pytest.raises(OptionError, match=r"example_blobs\.identities"):
        reg.build("dataset", "example_blobs", {"identities": "3"})
    rec = reg.build("recognizer", "example_pixels", {})
    assert isinstance(rec, Recognizer)
    emb = rec.embed([np.zeros((16, 16, 3), np.uint8) + 7, train.load(0)[:16, :16]])
    assert emb.shape == (2, 256) and emb.dtype == np.float32


def test_example_recognizer_evaluates_on_example_dataset_through_harness_run(installed_example, tmp_path):
    reports = tmp_path / "reports"
    out = harness("run", "--recognizer", "example_pixels", "--eval", "example_blobs", "--reports", str(reports),
                  env={"FACEBENCH_PLUGINS": "example", "FACEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr + out.stdout
    (run_dir,) = list((reports / "runs").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "finished" and results["task"] == "recognition"
    protocol = results["protocol"]
    assert protocol["dataset"] == "example_blobs" and protocol["pairs"] == 96 and protocol["folds"] == 2
    assert protocol["input_size"] == [16, 16] and protocol["distance"] == "cosine"
    assert protocol["synthetic"] is True and protocol["threshold_rule"].startswith("2-fold")
    # already-cropped data (ImageSet.aligned="example_64"): resized, neither detected nor re-aligned
    assert "example_64" in protocol["detector"] and "example_64" in protocol["alignment"]
    acc = {m["name"]: m for m in results["metrics"]}["accuracy"]["value"]
    assert 0.5 < acc <= 1.0
    assert (reports / "index.html").is_file()


def test_plugin_docs_cover_every_kind_and_spec_field_and_the_tutorial_builds_the_example():
    import dataclasses

    from harness.align import TEMPLATES
    from harness.specs import KINDS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    for kind, cls in KINDS.items():
        assert f"### {kind.capitalize()} — `{cls.__name__}`" in doc, f"docs/plugins.md has no section for {kind}"
        for f in dataclasses.fields(cls):
            assert f"`{f.name}" in doc, f"docs/plugins.md does not explain {cls.__name__}.{f.name}"
    for name in TEMPLATES:
        assert f"`{name}`" in doc, f"docs/plugins.md does not list the alignment template {name}"
    for needed in ('framework="none"', "DataError", "ImageSet(", "PairSet(", "example_pixels", "example_blobs",
                   "harness run --recognizer example_pixels --eval example_blobs"):
        assert needed in doc, needed
    example = (EXAMPLE / "facebench_example" / "__init__.py").read_text()
    assert 'name="example_pixels"' in example and 'name="example_blobs"' in example
    arch = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    for kind in KINDS:
        assert f"| {kind} |" in arch, f"docs/architecture.md does not say where {kind}s live"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "docs/architecture.md" in readme and "../shared/docs" not in readme
