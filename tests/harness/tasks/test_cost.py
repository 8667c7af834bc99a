"""The model card (harness.tasks._cost) and the reproducibility manifest (harness.tasks._manifest).

* speed measurement against a fake clock whose cost per call is known, so
  the medians, the batch chosen under a budget and the repeats are exact;
* the torch FLOP count against facebench's torch profile (forward hooks),
  parametrised over every registered torch backbone;
* the manifest fingerprint: every field and every compared runtime changes
  it, a runtime the model does not run on does not;
* end to end through ``harness run``: a tiny trained backbone and an ONNX
  recognizer write ``sections.model_card`` and ``sections.manifest``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.tasks import _cost, _manifest


class FakeClock:
    """``embed`` advances time by ``fixed + per_face * n`` seconds; nothing else takes time."""

    def __init__(self, fixed: float, per_face: float) -> None:
        self.now, self.fixed, self.per_face, self.calls = 0.0, fixed, per_face, []

    def __call__(self) -> float:
        return self.now

    def embed(self, batch: list) -> np.ndarray:
        self.calls.append(len(batch))
        self.now += self.fixed + self.per_face * len(batch)
        return np.zeros((len(batch), 4), np.float32)


CROPS = [np.zeros((8, 8, 3), np.uint8)] * 5  # fewer than 64: the batch repeats them


def test_speed_is_the_median_of_warm_calls():
    clock = FakeClock(fixed=0.002, per_face=0.001)
    out = _cost.measure_speed(clock.embed, CROPS, budget_s=10.0, clock=clock)
    assert out["ms_per_face_batch1"] == pytest.approx(3.0)
    assert out["img_per_s"] == pytest.approx(64 / (0.002 + 0.064))
    assert out["throughput_batch"] == 64 and out["repeats_batch1"] == 5 and out["repeats_batch"] == 5
    # one untimed call of each size first, then the timed ones
    assert clock.calls == [1] * 6 + [64] * 6
    assert "note" not in out


def test_a_slow_model_gets_a_smaller_stated_batch_within_the_budget():
    clock = FakeClock(fixed=0.0, per_face=0.05)  # 64 faces: 3.2 s a call
    out = _cost.measure_speed(clock.embed, CROPS, budget_s=3.0, clock=clock)
    # a third of the budget for batch 1: 0.05 s a call -> 5 timed calls (0.3 s with the warm-up)
    assert out["repeats_batch1"] == 5
    left = 3.0 - 0.3
    size = 64
    while 2 * size * 0.05 > left:
        size //= 2
    assert out["throughput_batch"] == size == 16
    assert "batch 16, not 64" in out["note"] and "FACEBENCH_COST" in out["note"]
    assert clock.now <= 3.0 + 2 * size * 0.05  # bounded: at most one call past the budget


def test_repeats_stop_at_the_budget_but_one_is_always_timed():
    clock = FakeClock(fixed=1.0, per_face=0.0)
    out = _cost.measure_speed(clock.embed, CROPS, budget_s=1.5, clock=clock)
    assert out["repeats_batch1"] == 1
    assert out["throughput_batch"] == 1 and out["img_per_s"] == pytest.approx(1.0)


def test_no_crops_is_stated():
    assert "skipped" in _cost.measure_speed(lambda b: None, [], budget_s=1.0)


@pytest.mark.parametrize("raw,expected", [(None, 5.0), ("", 5.0), ("2.5", 2.5), ("0", None), ("off", None),
                                          ("OFF", None), ("600", 600.0)])
def test_budget_from_the_environment(raw, expected):
    env = {} if raw is None else {"FACEBENCH_COST": raw}
    assert _cost.budget_from_env(env) == expected


@pytest.mark.parametrize("raw", ["-1", "601", "fast", "nan", "inf"])
def test_a_bad_budget_is_one_line(raw):
    with pytest.raises(ConfigError, match=r"FACEBENCH_COST=.*expected seconds in \(0, 600\]"):
        _cost.budget_from_env({"FACEBENCH_COST": raw})


# -------------------------------------------------------------- torch FLOPs
def _torch_backbones():
    from harness.registry import Registry

    reg = Registry()
    return [s.name for s in reg.specs("backbone") if s.framework == "torch" and s.available]


@pytest.mark.parametrize("name", _torch_backbones())
def test_torch_flops_are_twice_the_profiled_macs(name):
    pytest.importorskip("torch")
    from harness.registry import Registry

    from facebench_plugins.backbones._profile import profile

    reg = Registry()
    spec = reg.get("backbone", name)
    model = reg.build("backbone", name)
    size = tuple(spec.input_size)
    prof = profile(model, size)
    got = _cost.torch_compute(model, size)
    assert got["flops"] == 2 * prof.macs and got["params"] == prof.params
    assert model.training  # the module's mode is restored


# ------------------------------------------------------------------ manifest
BASE = {
    "alignment": "arcface_112", "input_size": [112, 112], "color": "rgb",
    "normalisation": {"scale": 1.0, "mean": [127.5] * 3, "std": [127.5] * 3}, "flip": "none",
    "batch_size": 64, "precision": "float32", "model_sha256": "ab" * 32,
    "runtimes": {"onnxruntime": "1.20.0", "opencv": "4.10.0", "torch": "2.5.0", "dlib": None},
    "compared_runtimes": ["onnxruntime", "opencv"],
}
CHANGES = {
    "alignment": "sphereface_112x96", "input_size": [112, 96], "color": "bgr",
    "normalisation": {"scale": 1.0, "mean": [127.5] * 3, "std": [128.0] * 3}, "flip": "sum",
    "batch_size": 1, "precision": "autocast (bf16/fp16)", "model_sha256": "cd" * 32,
}


def test_every_manifest_field_changes_the_fingerprint():
    assert set(CHANGES) == set(_manifest.FIELDS)
    base = _manifest.fingerprint(BASE)
    for key, value in CHANGES.items():
        other = {**copy.deepcopy(BASE), key: value}
        assert _manifest.fingerprint(other) != base, key


@pytest.mark.parametrize("runtime,compared", [("onnxruntime", True), ("opencv", True), ("torch", False),
                                              ("dlib", False)])
def test_only_the_runtimes_the_model_runs_on_change_the_fingerprint(runtime, compared):
    other = copy.deepcopy(BASE)
    other["runtimes"][runtime] = "99.0"
    assert (_manifest.fingerprint(other) != _manifest.fingerprint(BASE)) is compared


def test_runtime_versions_name_the_five_runtimes():
    versions = _manifest.runtime_versions()
    assert set(versions) == {"onnxruntime", "opencv", "torch", "dlib", "tensorflow"}
    assert [_manifest.framework_runtime(f) for f in ("onnx", "opencv", "tensorflow", "torch")] == [
        "onnxruntime", "opencv", "tensorflow", "torch"]
    assert all(v is None or isinstance(v, str) for v in versions.values())


def test_state_dict_hash_follows_the_weights():
    torch = pytest.importorskip("torch")
    a = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    b = copy.deepcopy(a)
    assert _manifest.state_dict_sha256(a) == _manifest.state_dict_sha256(b)
    with torch.no_grad():
        b[0].weight[0, 0] += 1e-6
    assert _manifest.state_dict_sha256(a) != _manifest.state_dict_sha256(b)


# ---------------------------------------------------------------- end to end
def _results(reports: Path) -> dict:
    (found,) = list(reports.glob("runs/*/results.json"))
    return json.loads(found.read_text())


TINY = ["-o", "synthetic.size=32", "-o", "synthetic.train_identities=4", "-o", "synthetic.test_identities=6",
        "-o", "synthetic.images_per_identity=4", "-o", "synthetic.pairs_per_fold=5"]


def test_a_trained_backbone_run_records_its_card_and_manifest(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from harness.cli import main

    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    monkeypatch.setenv("FACEBENCH_COST", "off")
    args = ["run", "--backbone", "resnet20", "--loss", "softmax", "-o", "resnet20.input_size=32,32",
            "-o", "resnet20.embedding_size=16", *TINY, "--max-steps", "1", "--epochs", "1", "--batch-size", "8",
            "--device", "cpu", "--reports", str(tmp_path)]
    assert main(args) == 0
    res = _results(tmp_path)
    card, manifest = res["sections"]["model_card"], res["sections"]["manifest"]
    from harness.registry import Registry

    from facebench_plugins.backbones._profile import profile

    model = Registry().build("backbone", "resnet20", {"input_size": "32,32", "embedding_size": "16"})
    prof = profile(model, (32, 32))
    assert card["params"] == prof.params and card["gflops"] == round(2 * prof.macs / 1e9, 4)
    assert card["embedding_size"] == 16 and card["timing_skipped"] == "FACEBENCH_COST=off"
    assert "ms_per_face_batch1" not in card
    assert manifest["input_size"] == [32, 32] and manifest["flip"] == "none"
    assert manifest["normalisation"]["std"] == [128.0] * 3 and len(manifest["model_sha256"]) == 64
    assert manifest["fingerprint"] == _manifest.fingerprint(manifest)


def test_an_onnx_recognizer_run_records_its_card_and_manifest(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from harness.cli import main
    from harness.weights import sha256_file

    from tests.plugins.recognizers.test_onnx_recognizer import D, H, W, _graph

    model = tmp_path / "m.onnx"
    _graph(model)
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    monkeypatch.setenv("FACEBENCH_COST", "2")
    args = ["run", "--recognizer", "onnx", "-o", f"onnx.model={model}", "-o", "onnx.flip=sum",
            "-o", "onnx.threads=1", "--eval", "synthetic", *TINY, "--reports", str(tmp_path / "r")]
    assert main(args) == 0
    res = _results(tmp_path / "r")
    card, manifest = res["sections"]["model_card"], res["sections"]["manifest"]
    assert card["params"] == 3 * H * W * D and card["forward_passes_per_face"] == 2
    assert card["gflops_per_face"] == round(2 * 2 * 3 * H * W * D / 1e9, 4)
    assert card["embedding_size"] == D and card["ms_per_face_batch1"] > 0 and card["img_per_s"] > 0
    assert card["budget_s"] == 2.0 and card["wall_s"] <= 2.0 + 1.0
    assert manifest["model_sha256"] == sha256_file(model) and manifest["flip"] == "sum"
    assert manifest["color"] == "rgb" and manifest["input_size"] == [H, W]
    assert manifest["compared_runtimes"] == ["onnxruntime", "opencv"]
