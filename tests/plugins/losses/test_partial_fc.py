"""The sharded classifier (partial_fc) against the unsharded margin softmax.

Two gloo ranks under torchrun on the CPU, each with half the global batch
and its shard of the 11 class centres (uneven: 6 + 5), must give the
unsharded loss, embedding gradients (times ``world``: the DDP convention,
see partial_fc's docs) and centre gradients.  This file is also the worker
script: torchrun runs it with ``--worker OUT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facebench_plugins.losses.margin import MarginSoftmaxLoss
from facebench_plugins.losses.partial_fc import PartialFC, PartialFCOptions, build_partial_fc, shard_range
from harness.specs import OptionError

C, D, N_LOCAL, WORLD = 11, 16, 4, 2
MARGINS = [dict(m1=1.0, m2=0.5, m3=0.0), dict(m1=1.0, m2=0.0, m3=0.35), dict(m1=1.0, m2=0.3, m3=0.2),
           dict(m1=2.0, m2=0.0, m3=0.0)]


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(WORLD * N_LOCAL, D, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 5, 6, 10, 3, 5, 9, 1])
    return x, y


def _reference(margin: dict):
    torch.manual_seed(0)
    ref = MarginSoftmaxLoss(D, C, s=32.0, name="ref", **margin).double()
    x, y = _inputs()
    x.requires_grad_(True)
    loss = ref(x, y)
    loss.backward()
    return float(loss.detach()), x.grad, ref.weight.grad, ref.weight.detach()


# ---------------------------------------------------------------- worker
def _worker(out: Path) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    res: dict = {"cases": []}
    try:
        for margin in MARGINS:
            torch.manual_seed(0)
            pfc = PartialFC(D, C, s=32.0, **margin).double()
            x, y = _inputs()
            xl = x[rank * N_LOCAL:(rank + 1) * N_LOCAL].clone().requires_grad_(True)
            yl = y[rank * N_LOCAL:(rank + 1) * N_LOCAL]
            loss = pfc(xl, yl)
            loss.backward()
            res["cases"].append({
                "loss": float(loss), "x_grad": xl.grad.tolist(), "w_grad": pfc.weight.grad.tolist(),
                "weight": pfc.weight.detach().tolist(), "shard": list(pfc.shard),
            })
        with torch.no_grad():
            res["logits"] = pfc.logits(xl).tolist()
            res["accuracy"] = pfc.batch_accuracy(xl, yl)
        # negative-centre sampling: positives always kept, other rows may get no gradient
        torch.manual_seed(0)
        pfc = PartialFC(D, C, s=32.0, sample_rate=0.4).double()
        x, y = _inputs()
        xl = x[rank * N_LOCAL:(rank + 1) * N_LOCAL].clone().requires_grad_(True)
        loss = pfc(xl, y[rank * N_LOCAL:(rank + 1) * N_LOCAL])
        loss.backward()
        res["sampled"] = {"loss": float(loss), "w_grad_rows": (pfc.weight.grad.abs().sum(1) > 0).tolist()}
    finally:
        (out / f"rank{rank}.json").write_text(json.dumps(res))
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("pfc")
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": here + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
         str(Path(__file__).resolve()), "--worker", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.mark.parametrize("case", range(len(MARGINS)), ids=[str(m) for m in MARGINS])
def test_two_ranks_match_the_unsharded_loss_and_gradients(two_ranks, case):
    loss, x_grad, w_grad, weight = _reference(MARGINS[case])
    for rank, res in enumerate(two_ranks):
        got = res["cases"][case]
        start, stop = shard_range(C, rank, WORLD)
        assert got["shard"] == [start, stop]
        # the shards are the unsharded initial centres, split
        torch.testing.assert_close(torch.tensor(got["weight"], dtype=torch.float64), weight[start:stop])
        assert got["loss"] == pytest.approx(loss, rel=1e-10)
        torch.testing.assert_close(torch.tensor(got["w_grad"], dtype=torch.float64), w_grad[start:stop])
        mine = x_grad[rank * N_LOCAL:(rank + 1) * N_LOCAL]
        torch.testing.assert_close(torch.tensor(got["x_grad"], dtype=torch.float64) / WORLD, mine)


def test_logits_and_accuracy_see_all_classes(two_ranks):
    torch.manual_seed(0)
    ref = MarginSoftmaxLoss(D, C, s=32.0, **MARGINS[-1], name="ref").double()  # the last case's centres
    x, y = _inputs()
    full = ref.logits(x)
    for rank, res in enumerate(two_ranks):
        mine = full[rank * N_LOCAL:(rank + 1) * N_LOCAL]
        torch.testing.assert_close(torch.tensor(res["logits"], dtype=torch.float64), mine)
        assert res["accuracy"] == pytest.approx(float((full.argmax(1) == y).double().mean()))


def test_sampling_keeps_positives_and_only_lowers_the_loss(two_ranks):
    full_loss, *_ = _reference(MARGINS[0])
    _, y = _inputs()
    for rank, res in enumerate(two_ranks):
        s = res["sampled"]
        start, stop = shard_range(C, rank, WORLD)
        rows = s["w_grad_rows"]
        positives = {int(c) - start for c in y if start <= c < stop}
        assert all(rows[p] for p in positives)  # every positive centre got a gradient
        assert sum(rows) == max(int(0.4 * (stop - start)), len(positives))  # and only the sample
        # the softmax over fewer negatives: the loss cannot exceed the full one
        assert 0 < s["loss"] <= full_loss + 1e-9


def test_single_process_is_the_plain_margin_softmax():
    torch.manual_seed(0)
    ref = MarginSoftmaxLoss(D, C, s=64.0, m2=0.5, name="arcface")
    torch.manual_seed(0)
    pfc = build_partial_fc(PartialFCOptions(), embedding_size=D, num_classes=C)
    assert pfc.shard == (0, C) and not pfc.distributed
    x, y = _inputs()
    x = x.float().requires_grad_(True)
    a = ref(x, y)
    (ga,) = torch.autograd.grad(a, [x])
    b = pfc(x, y)
    (gb,) = torch.autograd.grad(b, [x])
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    torch.testing.assert_close(ga, gb)
    torch.testing.assert_close(pfc.logits(x), ref.logits(x))


def test_shard_ranges_cover_all_classes_once():
    for c, w in [(11, 2), (10, 3), (1_000_000, 8), (5, 5)]:
        ranges = [shard_range(c, r, w) for r in range(w)]
        assert ranges[0][0] == 0 and ranges[-1][1] == c
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        sizes = [b - a for a, b in ranges]
        assert max(sizes) - min(sizes) <= 1


def test_bad_options_are_clear():
    with pytest.raises(OptionError, match="sample_rate"):
        PartialFCOptions(sample_rate=0.0)
    with pytest.raises(OptionError, match="partial_fc.m2"):
        PartialFCOptions(m2=2.0)


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker(Path(sys.argv[sys.argv.index("--worker") + 1]))
