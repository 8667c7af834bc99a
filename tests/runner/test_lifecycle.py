"""The one run lifecycle (:mod:`harness.runner._lifecycle`) the local runner
and the torchrun workers share: skip / create -> task -> finish, with the
collective that makes rank 0 speak for the run; and the checks done before
any run folder exists (``--init``, ``--device``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import RunConfig
from harness.errors import HarnessError
from harness.registry import get_registry
from harness.runner._lifecycle import Collective, execute_grid


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")


def _spec_and_cfg(reports: Path):
    cfg = RunConfig(backbones=("resnet20",), losses=("arcface",), reports=str(reports))
    return cfg.expand(get_registry()), cfg


@pytest.fixture
def fake_task(monkeypatch):
    """Replace the recognition task by one that records its calls and returns one metric."""
    calls: list = []

    def task(spec, ctx):
        calls.append(ctx)
        ctx.log("fake task ran")
        return {"metrics": [{"name": "accuracy", "value": 0.75, "direction": "higher"}]}

    monkeypatch.setattr("harness.tasks.get_task", lambda name: task)
    return calls


def _results(reports: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(reports).glob("runs/*/results.json"))]


# ------------------------------------------------------------- one process
def test_a_finished_run_is_skipped_the_second_time(tmp_path, quiet, fake_task, capsys):
    runs, cfg = _spec_and_cfg(tmp_path)
    first = execute_grid(runs, cfg, registry=get_registry())
    assert [o.status for o in first] == ["finished"] and len(fake_task) == 1
    (res,) = _results(tmp_path)
    assert res["status"] == "finished" and res["provenance"]["wall_s"] >= 0
    assert "distributed" not in res["provenance"]
    assert "fake task ran" in (first[0].run_dir.log_path).read_text()
    second = execute_grid(runs, cfg, registry=get_registry())
    assert [o.status for o in second] == ["skipped"] and len(fake_task) == 1
    assert "already finished" in capsys.readouterr().err


# ------------------------------------------------------- the collective
class _RankZeroOfTwo(Collective):
    """Rank 0 of a world of two whose rank 1 failed."""

    world = 2

    def gather(self, obj):
        return [obj, ("OSError: disk unplugged", "Traceback (rank 1)\nOSError: disk unplugged\n")]

    def provenance(self):
        return {"launcher": "torchrun", "world_size": 2, "backend": "gloo"}


def test_rank_zero_records_the_failure_of_another_rank(tmp_path, quiet, fake_task):
    runs, cfg = _spec_and_cfg(tmp_path)
    with pytest.raises(HarnessError, match=r"1 of 1 run\(s\) failed: .*rank 1: OSError: disk unplugged"):
        execute_grid(runs, cfg, registry=get_registry(), collective=_RankZeroOfTwo())
    (res,) = _results(tmp_path)
    assert res["status"] == "failed" and res["error"] == "rank 1: OSError: disk unplugged"
    assert res["provenance"]["distributed"] == {"launcher": "torchrun", "world_size": 2, "backend": "gloo"}
    log = next(tmp_path.glob("runs/*/run.log")).read_text()
    assert "--- rank 1 ---\nTraceback (rank 1)" in log and "(torchrun: 2 ranks, gloo)" in log


class _RankOneOfTwo(Collective):
    """Rank 1: rank 0 decides where the run goes; this rank works in scratch."""

    rank, world = 1, 2

    def __init__(self, rank0_folder: Path, scratch: Path) -> None:
        self.rank0_folder, self.root = rank0_folder, scratch

    def broadcast(self, obj):
        assert obj is None  # only rank 0 contributes
        return ("run", str(self.rank0_folder), False) if not hasattr(self, "_begun") else []

    def gather(self, obj):
        self._begun = True
        return [None, obj]

    def scratch(self, index: int) -> Path:
        path = self.root / f"run{index}"
        path.mkdir(parents=True)
        return path


def test_other_ranks_work_in_scratch_and_write_nothing(tmp_path, quiet, fake_task, capsys):
    runs, cfg = _spec_and_cfg(tmp_path / "reports")
    rank0 = tmp_path / "reports" / "runs" / "decided-by-rank-0"
    outcomes = execute_grid(runs, cfg, registry=get_registry(),
                            collective=_RankOneOfTwo(rank0, tmp_path / "scratch"))
    assert outcomes == []  # rank 0 keeps the outcomes
    (ctx,) = fake_task
    assert ctx.run_dir.path == tmp_path / "scratch" / "run1" and not ctx.progress
    assert not rank0.exists() and not (tmp_path / "reports" / "index.html").exists()
    assert "fake task ran" not in capsys.readouterr().err  # rank 0 speaks for the run


# ------------------------------------------- checks before any folder exists
def _run(tmp_path: Path, *args: str) -> int:
    return main(["run", "--reports", str(tmp_path / "reports"), *args])


def _no_run_folder(tmp_path: Path) -> bool:
    runs = tmp_path / "reports" / "runs"
    return not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("make_init, expected", [
    (lambda d: d / "missing.pt", "does not exist"),
    (lambda d: d, "is a folder"),
])
def test_a_bad_init_path_fails_before_the_run_begins(tmp_path, quiet, capsys, make_init, expected):
    assert _run(tmp_path, "--init", str(make_init(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1
    assert _no_run_folder(tmp_path)


def test_a_text_init_fails_before_the_run_and_never_suggests_unsafe_loading(tmp_path, quiet, capsys):
    text = tmp_path / "weights.pt"
    text.write_text("not a checkpoint\n")
    assert _run(tmp_path, "--init", str(text)) == 2
    err = capsys.readouterr().err
    assert "is not a PyTorch weights file" in err and err.count("\n") == 1
    assert "weights_only=False" not in err and "set to `False`" not in err
    assert _no_run_folder(tmp_path)


@pytest.mark.parametrize("device, expected", [
    ("gpu", "is not a torch device"),
    ("cuda:99", "CUDA device"),
    ("meta", "holds no data"),
])
def test_a_bad_device_fails_before_the_run_begins(tmp_path, quiet, capsys, device, expected):
    assert _run(tmp_path, "--device", device) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err
    assert _no_run_folder(tmp_path)


def test_torchrun_launch_checks_before_starting_workers(tmp_path, quiet, capsys):
    assert _run(tmp_path, "--nproc-per-node", "2", "--init", str(tmp_path / "missing.pt")) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "torchrun:" not in err and err.count("\n") == 1
    assert _no_run_folder(tmp_path)
