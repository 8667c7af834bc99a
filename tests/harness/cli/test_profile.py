"""``harness profile``: the memory estimate against measured peaks.

The estimate (saved-for-backward bytes counted at batch 4 and 6, plus
weights, gradients and optimizer state) is checked against the allocator's
measured peak of two real training steps -- on the CPU through
``torch.profiler``'s allocator events, on CUDA (when present) through
``torch.cuda.max_memory_allocated`` -- within +-15 %, for three backbones at
two batch sizes each.  Small inputs keep the test short.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.cli.profile import MemoryEstimate, command, estimate, measure_peak
from harness.errors import ConfigError
from harness.registry import Registry

torch = pytest.importorskip("torch")

TOLERANCE = 0.15
#: backbone -> (input side, the two batch sizes, classes)
CASES = {
    "resnet20": (32, (4, 8), 500),
    "mobilefacenet": (48, (4, 8), 500),
    "lresnet50": (32, (2, 4), 500),
}


@pytest.fixture(scope="module")
def registry():
    return Registry()


def _opts(name):
    side = CASES[name][0]
    return {name: {"input_size": str(side)}}


@pytest.fixture(scope="module")
def estimates(registry):
    cache = {}

    def get(name, precision="fp32"):
        if (name, precision) not in cache:
            _, batches, classes = CASES[name]
            cache[name, precision] = estimate(registry, name, "arcface", num_classes=classes,
                                              batch_size=batches[0], precision=precision, device="cpu",
                                              options=_opts(name))
        return cache[name, precision]

    return get


def _within(est, measured):
    return abs(est - measured) <= TOLERANCE * measured


@pytest.mark.parametrize("name", CASES)
def test_training_estimate_within_15_percent_of_measured_cpu_peak(registry, estimates, name):
    e = estimates(name)
    _, batches, classes = CASES[name]
    measured = {}
    for batch in batches:
        measured[batch] = measure_peak(registry, name, "arcface", num_classes=classes, batch_size=batch,
                                       device="cpu", options=_opts(name))
        assert _within(e.train_total(batch), measured[batch]), (name, batch, e.train_total(batch), measured)
    # the per-image part on its own: what the extra images cost, estimated vs measured
    small, large = batches
    grown = measured[large] - measured[small]
    assert grown > 0 and _within(e.train_total(large) - e.train_total(small), grown), (name, measured)


@pytest.mark.parametrize("name", CASES)
def test_inference_estimate_within_15_percent_of_measured_cpu_peak(registry, estimates, name):
    e = estimates(name)
    _, batches, classes = CASES[name]
    for batch in batches:
        measured = measure_peak(registry, name, "arcface", num_classes=classes, batch_size=batch,
                                device="cpu", mode="infer", options=_opts(name))
        assert _within(e.infer_total(batch), measured), (name, batch, e.infer_total(batch), measured)


def test_bf16_autocast_halves_activations_and_keeps_fp32_weights(registry, estimates):
    fp32, bf16 = estimates("resnet20"), estimates("resnet20", "bf16")
    assert bf16.weights == fp32.weights and bf16.grads == fp32.grads
    assert 0.4 < bf16.act_backbone / fp32.act_backbone < 0.75  # BN keeps some fp32 tensors
    assert bf16.act_fixed > fp32.act_fixed  # autocast's bf16 weight copies
    _, batches, classes = CASES["resnet20"]
    measured = measure_peak(registry, "resnet20", "arcface", num_classes=classes, batch_size=batches[1],
                            precision="bf16", device="cpu", options=_opts("resnet20"))
    assert _within(bf16.train_total(batches[1]), measured), (bf16.train_total(batches[1]), measured)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the GPU peak check needs one")
@pytest.mark.parametrize("name", CASES)
def test_training_estimate_within_15_percent_of_cuda_peak(registry, name):
    _, batches, classes = CASES[name]
    e = estimate(registry, name, "arcface", num_classes=classes, batch_size=batches[0], device="cuda",
                 options=_opts(name))
    for batch in batches:
        measured = measure_peak(registry, name, "arcface", num_classes=classes, batch_size=batch,
                                device="cuda", options=_opts(name))
        assert _within(e.train_total(batch), measured), (name, batch, e.train_total(batch), measured)


@pytest.mark.parametrize("loss", [s.name for s in Registry().specs("loss") if s.available])
def test_every_registered_loss_is_estimated_within_15_percent(registry, loss):
    opts = {"mobilefacenet": {"input_size": "32"}}
    e = estimate(registry, "mobilefacenet", loss, num_classes=20, batch_size=8, device="cpu", options=opts)
    measured = measure_peak(registry, "mobilefacenet", loss, num_classes=20, batch_size=8, device="cpu",
                            options=opts)
    assert _within(e.train_total(), measured), (loss, e.train_total(), measured)


def test_head_and_optimizer_accounting(estimates):
    e = estimates("mobilefacenet")
    classes = CASES["mobilefacenet"][2]
    assert e.params_head == classes * e.embedding_size
    assert e.macs_head == classes * e.embedding_size
    assert e.grads == 4 * (e.params_backbone + e.params_head)  # every parameter trains
    assert e.optimizer_state == e.grads  # one momentum buffer
    assert e.head_static == 3 * 4 * e.params_head
    assert e.weights >= e.grads  # plus BatchNorm buffers
    assert e.train_total(16) - e.train_total(8) == 8 * (e.act_backbone + e.act_head)


def test_largest_batch_is_the_last_that_fits(estimates):
    e = estimates("resnet20")
    budget = e.train_total(37) + 1
    n = e.largest_batch(budget)
    assert n == 37 and e.train_total(n) <= budget < e.train_total(n + 1)
    assert e.largest_batch(e.static) == 0


def test_cli_prints_every_line_and_json(tmp_path):
    args = ["--backbone", "mobilefacenet", "--loss", "softmax", "--num-classes", "50", "--batch-size", "4",
            "--device", "cpu", "-o", "mobilefacenet.input_size=32"]
    res = CliRunner().invoke(command, args + ["--memory", "1GB", "--measure"])
    assert res.exit_code == 0, res.output
    for fragment in ("params", "MACs / image", "activations / image", "optimizer state (SGD momentum)",
                     "classifier head", "training total", "inference total", "largest batch within 1.00 GiB",
                     "measured training peak on cpu", "measured inference peak on cpu"):
        assert fragment in res.output
    res = CliRunner().invoke(command, args + ["--json", "--optimizer", "adamw"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["optimizer_state"] == 2 * out["grads"]
    assert out["train_total"] == out["static"] + max(out["activations"], out["step_extra"])
    assert out["input_size"] == [32, 32] and out["num_classes"] == 50
    assert set(out) >= {f.name for f in MemoryEstimate.__dataclass_fields__.values()}


@pytest.mark.parametrize("args, fragment", [
    (["--num-classes", "1"], "--num-classes 1: a classifier needs at least 2 classes"),
    (["--batch-size", "0"], "--batch-size 0: expected a positive batch size"),
    (["--memory", "lots"], "--memory 'lots': expected a size"),
])
def test_bad_input_is_one_line(capsys, args, fragment):
    base = {"--backbone": "mobilefacenet", "--loss": "arcface", "--num-classes": "10", "--batch-size": "2"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = ["profile"] + [x for kv in base.items() for x in kv] + ["-o", "mobilefacenet.input_size=32"]
    assert main(flat) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_unknown_backbone_suggests_a_name():
    res = CliRunner().invoke(command, ["--backbone", "lresnet5", "--loss", "arcface", "--num-classes", "10",
                                       "--batch-size", "2"])
    assert res.exit_code == 2 and "lresnet50" in res.output


def test_estimate_rejects_bad_precision(registry):
    with pytest.raises(ConfigError, match="--precision 'int8'"):
        estimate(registry, "mobilefacenet", "arcface", num_classes=10, batch_size=2, precision="int8")
