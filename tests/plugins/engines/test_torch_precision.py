"""The torch engine's ``precision`` choice (fp32 / auto / bf16), its bf16
detection, and ``compile`` (``torch.compile``): tiny models, CPU, seconds
(the compile test pays one compilation)."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import pytest
import torch

from _engine_fixtures import SoftmaxLoss, TinyNet, random_imageset, tiny_spec
from facebench_plugins.engines import TorchEngineOptions
from facebench_plugins.engines import _trainer
from facebench_plugins.engines._trainer import Precision, cpu_bf16_fast, cpu_bf16_supported
from facebench_plugins.engines.options import PRECISIONS
from facebench_plugins.engines.torch_engine import build
from harness.config import TrainSettings
from harness.errors import ConfigError
from harness.registry import Registry

CPU = torch.device("cpu")


def _train(options: TorchEngineOptions, tmp_path, *, dropout: float = 0.1, steps: int = 2, seed: int = 0):
    engine = build(options)
    engine.seed_everything(seed)
    torch.manual_seed(seed)
    model = TinyNet(dropout=dropout)
    loss = SoftmaxLoss(num_classes=4)
    settings = TrainSettings(epochs=1, batch_size=8, lr=0.05, max_steps=steps, checkpoint_every=100)
    return engine.train(model, loss, random_imageset(n=32, classes=4), backbone_spec=tiny_spec(),
                        settings=settings, workdir=tmp_path, seed=seed, progress=False)


# ------------------------------------------------------------------ options
def test_precision_is_a_validated_choice_through_the_registry():
    reg = Registry(load_entry_points=False, plugins=[__import__("facebench_plugins.engines").engines])
    assert reg.build("engine", "torch", {}).options.precision == "auto"  # bf16 where it is faster, else fp32
    for choice in PRECISIONS:
        assert reg.build("engine", "torch", {"precision": choice}).options.precision == choice
    with pytest.raises(ConfigError, match="precision") as err:
        reg.build("engine", "torch", {"precision": "fp64"})
    assert "\n" not in str(err.value)
    assert reg.build("engine", "torch", {"compile": "true"}).options.compile is True


# ------------------------------------------------------------------ detection
@pytest.mark.parametrize("flags, mkldnn, has_bf16, fast", [
    ("fpu sse2 avx2 avx512f avx512bw", True, False, False),          # AVX-512 without its bf16 extension
    ("fpu avx512f avx512_bf16 avx512_vnni", True, True, False),      # Cooper Lake / Zen 4: no matrix unit
    ("fpu amx_bf16 amx_tile amx_int8", True, True, True),            # Sapphire Rapids AMX
    ("fpu avx512_bf16 amx_bf16", False, False, False),               # torch built without oneDNN
    ("", True, False, False),                                        # no flags line at all
    ("xavx512_bf16 amx_bf16x avx512_bf16_extra", True, False, False),  # whole flag names only
])
def test_cpu_bf16_detection(flags, mkldnn, has_bf16, fast):
    assert cpu_bf16_supported(flags, mkldnn=mkldnn) is has_bf16
    assert cpu_bf16_fast(flags, mkldnn=mkldnn) is fast


def test_cpu_bf16_detection_reads_this_machine():
    # the same answer as reading /proc/cpuinfo by hand (grep, the reference)
    try:
        text = open("/proc/cpuinfo", encoding="utf-8").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo on this system")
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "flags :")
    words = set(line.split(":", 1)[1].split())
    expected = torch.backends.mkldnn.is_available() and bool({"avx512_bf16", "amx_bf16"} & words)
    assert cpu_bf16_supported() is expected
    fast = torch.backends.mkldnn.is_available() and "amx_bf16" in words
    assert cpu_bf16_fast() is fast
    assert _trainer.bf16_supported(CPU) is fast  # what precision: auto goes by


@pytest.mark.parametrize("choice, supported, dtype, channels_last", [
    ("fp32", True, None, False),
    ("auto", True, torch.bfloat16, True),
    ("auto", False, None, False),
    ("bf16", False, torch.bfloat16, True),
])
def test_precision_choice_on_the_cpu(monkeypatch, choice, supported, dtype, channels_last):
    monkeypatch.setattr(_trainer, "cpu_bf16_fast", lambda *a, **k: supported)
    p = Precision.for_device(CPU, TorchEngineOptions(precision=choice))
    assert (p.amp_dtype, p.channels_last) == (dtype, channels_last)
    assert not p.scaler().is_enabled()  # bf16 needs no gradient scaler


def test_the_older_cpu_bf16_flag_still_means_bf16_autocast():
    p = Precision.for_device(CPU, TorchEngineOptions(precision="fp32", cpu_bf16=True))
    assert p.amp_dtype is torch.bfloat16 and p.channels_last is False


# ------------------------------------------------------------------ training
def test_bf16_trains_in_channels_last_with_float32_weights(tmp_path):
    fp32 = _train(TorchEngineOptions(), tmp_path / "fp32")
    bf16 = _train(TorchEngineOptions(precision="bf16"), tmp_path / "bf16")
    assert bf16.steps == 2 and all(math.isfinite(v) for v in bf16.history["loss"])
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    assert bf16.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    # the first step's loss is computed before any update: bf16 rounds it (8-bit mantissa, ~0.4 %
    # per product) but must stay near float32's on the same seed and batch
    assert bf16.history["loss"][0] == pytest.approx(fp32.history["loss"][0], rel=2e-2)
    assert bf16.history["loss"][0] != fp32.history["loss"][0]  # autocast did run in bf16


def _compiler_problem() -> str | None:
    """Why torch.compile cannot run here (None: it can): inductor needs a C/C++ compiler on the CPU."""
    for cc in ("gcc", "g++"):
        if shutil.which(cc) is None:
            return f"torch.compile on the CPU needs {cc}; none on PATH"
        if subprocess.run([cc, "--version"], capture_output=True).returncode != 0:
            return f"{cc} --version failed"
    if sys.platform == "win32":
        return "torch.compile's inductor backend does not run on Windows CPUs"
    return None


def test_compiled_training_matches_eager(tmp_path):
    why = _compiler_problem()
    if why:
        pytest.skip(why)
    import torch._dynamo

    torch._dynamo.reset()
    # no dropout: compiled code draws its own random numbers, so only a dropout-free step is comparable
    eager = _train(TorchEngineOptions(), tmp_path / "eager", dropout=0.0)
    compiled = _train(TorchEngineOptions(compile=True), tmp_path / "compiled", dropout=0.0)
    assert compiled.steps == eager.steps == 2
    # step 2's loss follows the first update, so it checks forward, backward and the step
    assert compiled.history["loss"] == pytest.approx(eager.history["loss"], abs=1e-4)
    # the checkpoint holds the plain model's weights (no torch.compile wrapper names)
    saved = torch.load(compiled.checkpoint, weights_only=True)
    assert not any("_orig_mod" in k for k in saved["model"])
    for (name, a), b in zip(compiled.model.state_dict().items(), eager.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize("options, expected", [
    ({"precision": "fp32"}, "float32"),
    ({"precision": "auto"}, "bfloat16 autocast + channels_last" if cpu_bf16_fast() else "float32"),
    ({"precision": "bf16"}, "bfloat16 autocast + channels_last"),
    ({"precision": "fp32", "cpu_bf16": True}, "bfloat16 autocast"),
])
def test_the_manifest_states_the_precision_the_embeddings_are_computed_in(options, expected):
    from harness.tasks._manifest import backbone_manifest

    engine = build(TorchEngineOptions(**options))
    assert engine.precision_label("cpu") == expected
    spec = tiny_spec()
    m = backbone_manifest(engine, TinyNet(), spec, flip=None, device="cpu", batch_size=8)
    assert m["precision"] == expected
