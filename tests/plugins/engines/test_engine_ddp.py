"""DDP in the torch engine, for real: two gloo ranks under torchrun on the CPU.

* Two processes train the same steps as one process with the same global
  batch and seed, and end with the same weights (float tolerance): with a
  DDP-wrapped softmax classifier, and with the sharded ``partial_fc``
  classifier (against the unsharded arcface) — the latter stopped after 3
  steps and resumed from rank 0's checkpoint (gathered shards) to 6.
* Rank 0 alone writes checkpoints.
* A data error on one rank stops both ranks at the same step, with a clear
  message on the other one, and the processes exit (no hang).

This file is also the worker script: torchrun runs it with ``--worker OUT``.
The models have no BatchNorm and no dropout — those couple samples or draw
per-rank masks, so DDP is not expected to match one process with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
STEPS = 6
BATCH = 16


class NoBNNet(nn.Module):
    """conv-PReLU x2 -> pool -> linear (nothing couples the samples of a batch)."""

    def __init__(self, emb: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.PReLU(6),
            nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.PReLU(8),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.fc = nn.Linear(32, emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def _settings(max_steps: int = STEPS):
    from harness.config import TrainSettings

    return TrainSettings(epochs=1, max_steps=max_steps, batch_size=BATCH, lr=0.05, scheduler="constant",
                         checkpoint_every=100, grad_clip=1.0, device="cpu")


def _train(loss_name: str, workdir: Path, *, max_steps: int = STEPS, resume: bool = True, data=None):
    """One training run (in whatever process group is current)."""
    sys.path.insert(0, str(HERE))
    from _engine_fixtures import SoftmaxLoss, random_imageset, tiny_spec

    from facebench_plugins.engines import TorchEngineOptions
    from facebench_plugins.engines.torch_engine import build
    from facebench_plugins.losses.margin import MarginSoftmaxLoss
    from facebench_plugins.losses.partial_fc import PartialFC

    engine = build(TorchEngineOptions(threads=1))
    engine.seed_everything(0)
    model = NoBNNet()
    if loss_name == "softmax":
        loss = SoftmaxLoss(16, 8)
    elif loss_name == "arcface":
        loss = MarginSoftmaxLoss(16, 8, s=16.0, m2=0.3, name="arcface")
    else:
        loss = PartialFC(16, 8, s=16.0, m2=0.3)
    data = data if data is not None else random_imageset(n=96, classes=8, size=16)
    out = engine.train(model, loss, data, backbone_spec=tiny_spec(size=16), settings=_settings(max_steps),
                       workdir=workdir, seed=3, resume=resume, progress=False)
    return out


def _state(out) -> dict[str, torch.Tensor]:
    return {f"model.{k}": v.detach().clone() for k, v in out.model.state_dict().items()}


# ---------------------------------------------------------------- worker
def _worker(out_dir: Path) -> None:
    """Train in the torchrun process group, write this rank's report, shut
    the group down as the runner does, and leave with 0 only on success."""
    import traceback

    import torch.distributed as dist

    from harness.runner.torchrun import exit_worker, shutdown_process_group

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    report: dict = {"rank": rank}
    code = 1
    try:
        _cases(out_dir, rank, report)
        code = 0
    except Exception:  # noqa: BLE001 - printed for the fixture's assertion message
        traceback.print_exc()
    finally:
        (out_dir / f"report.rank{rank}.json").write_text(json.dumps(report))
        shutdown_process_group(wait=code == 0)
    exit_worker(code)


def _cases(out_dir: Path, rank: int, report: dict) -> None:
    """The three cases of the module docs; their results go into ``report``."""
    import torch.distributed as dist

    # 1. DDP-wrapped softmax classifier
    o = _train("softmax", out_dir / "softmax")
    torch.save({**_state(o), **{f"loss.{k}": v for k, v in o.loss_fn.state_dict().items()}},
               out_dir / f"softmax.rank{rank}.pt")
    report["softmax_history_loss"] = o.history["loss"]
    # 2. sharded classifier: 3 steps, then resume to 6 from rank 0's checkpoint
    _train("partial_fc", out_dir / "pfc", max_steps=3)
    o = _train("partial_fc", out_dir / "pfc", max_steps=STEPS)
    report["pfc_resumed_from"] = o.resumed_from_step
    shards = [torch.empty(0)] * dist.get_world_size()
    dist.all_gather_object(shards, o.loss_fn.weight.detach().clone())
    torch.save({**_state(o), "loss.weight": torch.cat(shards, 0)}, out_dir / f"pfc.rank{rank}.pt")
    report["pfc_history_loss"] = o.history["loss"]
    # 3. an error on rank 1 at its 3rd batch stops both ranks
    sys.path.insert(0, str(HERE))
    from _engine_fixtures import random_imageset

    data = random_imageset(n=96, classes=8, size=16)
    calls = {"n": 0}
    original = data.load

    def failing_load(i):
        calls["n"] += 1
        if rank == 1 and calls["n"] > 2 * (BATCH // 2):
            raise OSError("disk unplugged")
        return original(i)

    data.load = failing_load
    try:
        _train("softmax", out_dir / "fail", data=data, resume=False)
        report["fail"] = None
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        report["fail"] = f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(Path(__file__).resolve()), "--worker", str(out)],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = [json.loads((out / f"report.rank{r}.json").read_text()) for r in range(2)]
    return out, reports


def _close(a: dict, b: dict, atol: float = 2e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-4), \
            f"{k}: max diff {(a[k].float() - b[k].float()).abs().max():.3g}"


def test_two_gloo_ranks_train_like_one_process_softmax(ddp_run, tmp_path):
    out, reports = ddp_run
    ref = _train("softmax", tmp_path / "ref")
    want = {**_state(ref), **{f"loss.{k}": v for k, v in ref.loss_fn.state_dict().items()}}
    r0 = torch.load(out / "softmax.rank0.pt")
    r1 = torch.load(out / "softmax.rank1.pt")
    _close(r0, r1, atol=0)  # DDP keeps the ranks bit-identical
    _close(r0, want)
    # the mean of the ranks' losses is the loss of the global batch
    np.testing.assert_allclose(reports[0]["softmax_history_loss"], ref.history["loss"], rtol=1e-4)
    # the weights moved: the comparison is not of two untouched inits
    init = _train("softmax", tmp_path / "init", max_steps=1)
    assert not torch.allclose(_state(init)["model.fc.weight"], want["model.fc.weight"])


def test_sharded_classifier_trains_like_unsharded_arcface_and_resumes(ddp_run, tmp_path):
    out, reports = ddp_run
    assert reports[0]["pfc_resumed_from"] == 3 and reports[1]["pfc_resumed_from"] == 3
    ref = _train("arcface", tmp_path / "ref")
    want = {**_state(ref), "loss.weight": ref.loss_fn.weight.detach()}
    _close(torch.load(out / "pfc.rank0.pt"), want)
    _close(torch.load(out / "pfc.rank1.pt"), want)
    np.testing.assert_allclose(reports[0]["pfc_history_loss"], ref.history["loss"], rtol=1e-4)


def test_rank_zero_alone_writes_checkpoints(ddp_run):
    out, _ = ddp_run
    ck = torch.load(out / "pfc" / "checkpoints" / "last.pt", weights_only=False)
    assert ck["step"] == STEPS and ck["dist"]["world"] == 2
    shards = ck["dist"]["shards"]
    assert [s["loss"]["weight"].shape[0] for s in shards] == [4, 4]  # 8 centres split in two
    files = sorted(p.name for p in (out / "pfc" / "checkpoints").iterdir())
    assert files == ["last.json", "last.pt"]


def test_an_error_on_one_rank_stops_all_ranks(ddp_run):
    _, reports = ddp_run
    assert "disk unplugged" in reports[1]["fail"]
    assert "other rank(s) failed at step 3" in reports[0]["fail"]


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker(Path(sys.argv[sys.argv.index("--worker") + 1]))
