"""``harness run --nproc-per-node N``: the torchrun launcher and the grid
loop of its workers — for real, two gloo ranks on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import LauncherSettings, RunConfig
from harness.errors import ConfigError
from harness.runner.torchrun import config_mapping, in_worker, torchrun_command

# resnet20 has neither BatchNorm nor dropout by default, so two DDP ranks
# must train exactly like one process on the same global batch.
TINY = [
    "--backbone", "resnet20", "-o", "resnet20.input_size=32,32", "-o", "resnet20.embedding_size=32",
    "-o", "synthetic.train_identities=4", "-o", "synthetic.test_identities=10",
    "-o", "synthetic.images_per_identity=8", "-o", "synthetic.pairs_per_fold=10", "-o", "synthetic.size=32",
    "--max-steps", "3", "--batch-size", "8", "--lr", "0.05", "--device", "cpu", "--seed", "1",
]


def test_config_round_trips_through_yaml_without_the_launcher():
    cfg = RunConfig(backbones=("resnet20",), losses=("partial_fc",), train=("synthetic",),
                    options={"resnet20": {"input_size": "32,32"}}, seed=3, reports="r",
                    launcher=LauncherSettings(nproc_per_node=2))
    back = RunConfig.from_mapping(config_mapping(cfg))
    assert [r.config_hash() for r in back.expand()] == [r.config_hash() for r in cfg.expand()]
    assert back.launcher == LauncherSettings()  # workers must not launch again
    with_launcher = RunConfig.from_mapping(config_mapping(cfg, launcher=True))
    assert with_launcher.launcher.nproc_per_node == 2


def test_launcher_settings_stay_out_of_the_config_hash():
    plain = RunConfig(backbones=("resnet20",))
    launched = RunConfig(backbones=("resnet20",),
                         launcher={"docker": True, "gpus": "all", "nproc_per_node": 4})
    assert [r.config_hash() for r in plain.expand()] == [r.config_hash() for r in launched.expand()]
    assert "launcher" not in plain.expand()[0].to_dict()


def test_launcher_settings_are_validated():
    with pytest.raises(ConfigError, match="rdzv_endpoint"):
        LauncherSettings(nnodes=2)
    with pytest.raises(ConfigError, match="node_rank"):
        LauncherSettings(nnodes=2, node_rank=2, rdzv_endpoint="h:29500")
    with pytest.raises(ConfigError, match="gpus"):
        LauncherSettings(gpus="lots")
    with pytest.raises(ConfigError, match="unknown launcher setting 'nproc'"):
        RunConfig.from_mapping({"launcher": {"nproc": 2}})


def test_torchrun_command_lines(tmp_path):
    one = torchrun_command(tmp_path / "c.yaml", LauncherSettings(nproc_per_node=2), python="py")
    assert one[:3] == ["py", "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in one and "--standalone" in one
    assert one[-5:] == ["-m", "harness", "run", "--config", str(tmp_path / "c.yaml")]
    multi = torchrun_command("c.yaml", LauncherSettings(nproc_per_node=8, nnodes=2, node_rank=1,
                                                        rdzv_endpoint="10.0.0.1:29500"))
    assert {"--nnodes=2", "--node-rank=1", "--rdzv-backend=c10d", "--rdzv-endpoint=10.0.0.1:29500"} <= set(multi)
    assert "--standalone" not in multi


def test_worker_detection():
    assert not in_worker({})
    assert in_worker({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "x"})
    assert not in_worker({"RANK": "0", "WORLD_SIZE": "2"})


def test_cli_refuses_docker_flags_without_docker(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--gpus", "all", "--reports", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "only meaningful with --docker" in proc.stderr


def _harness(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=400)


def _results(reports: Path) -> dict:
    (found,) = list((reports / "runs").glob("*/results.json"))
    return json.loads(found.read_text())


@pytest.mark.parametrize("loss", ["arcface"])
def test_two_ranks_under_torchrun_match_one_process(tmp_path, loss):
    ddp = _harness([*TINY, "--loss", loss, "--nproc-per-node", "2", "--reports", "ddp"], tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "torchrun: 2 process(es)" in ddp.stderr
    one = _harness([*TINY, "--loss", loss, "--reports", "one"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = _results(tmp_path / "ddp"), _results(tmp_path / "one")
    assert a["status"] == b["status"] == "finished"
    assert a["provenance"]["distributed"] == {"launcher": "torchrun", "world_size": 2, "backend": "gloo"}
    assert a["config_hash"] == b["config_hash"]  # the launcher is not part of the run's identity
    # one run folder (rank 0 alone writes), one checkpoint
    runs = list((tmp_path / "ddp" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "ddp" / "index.html").exists()
    la, lb = a["curves"]["training"]["loss"], b["curves"]["training"]["loss"]
    assert len(la) == 3 and la == pytest.approx(lb, rel=1e-4)
    ma = {m["name"]: m["value"] for m in a["metrics"]}
    mb = {m["name"]: m["value"] for m in b["metrics"]}
    assert ma.keys() == mb.keys()
    for k in ma:
        if isinstance(ma[k], float):
            assert ma[k] == pytest.approx(mb[k], abs=1e-4), k


# ------------------------------------------------------- worker shutdown
_WORKER_ENV = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "TORCHELASTIC_RUN_ID": "test"}
_PROBE = ("import atexit, runpy, sys; atexit.register(lambda: print('finalised', flush=True)); "
          "sys.argv = ['harness', '--version']; runpy.run_module('harness', run_name='__main__')")


@pytest.mark.parametrize("worker", [True, False])
def test_a_torchrun_worker_leaves_without_interpreter_finalisation(worker):
    """gloo can abort a rank during finalisation after its work is done
    ("terminate called without an active exception"): a worker's
    ``python -m harness`` ends with os._exit after flushing; a plain one exits normally."""
    env = {k: v for k, v in os.environ.items() if k not in _WORKER_ENV}
    if worker:
        env.update(_WORKER_ENV)
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "facebench" in proc.stdout  # flushed before leaving
    assert ("finalised" in proc.stdout) is not worker


def test_shutdown_destroys_the_process_group_and_is_a_no_op_without_one(tmp_path):
    import torch.distributed as dist

    from harness.runner.torchrun import shutdown_process_group

    shutdown_process_group()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        shutdown_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
