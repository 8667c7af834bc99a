"""``harness run … --launcher slurm | submitit-local``: each cell of a grid as a
job through submitit (:mod:`harness.runner.slurm`).

The grid runs for real with submitit's local executor (two jobs, two
processes) into one reports folder and is compared with the same grid run
in one process.  The Slurm path is checked up to ``sbatch``: a fake ``srun``
and ``sbatch`` on PATH stand in for a cluster, and the batch script submitit
writes is read back.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import LauncherSettings, RunConfig, SlurmSettings, slurm_minutes
from harness.errors import ConfigError

submitit = pytest.importorskip("submitit", reason="submitit is not installed: pip install 'facebench[slurm]'")

from harness.runner.slurm import (  # noqa: E402 - after the importorskip above
    CellJob,
    cell_payload,
    failure_line,
    local_parameters,
    make_executor,
    sbatch_parameters,
)

# The cheapest trained combination (as the torchrun tests): a 2-cell grid over the loss.
TINY = [
    "--backbone", "resnet20", "-o", "resnet20.input_size=32,32", "-o", "resnet20.embedding_size=32",
    "-o", "synthetic.train_identities=4", "-o", "synthetic.test_identities=10",
    "-o", "synthetic.images_per_identity=8", "-o", "synthetic.pairs_per_fold=10", "-o", "synthetic.size=32",
    "--max-steps", "3", "--batch-size", "8", "--lr", "0.05", "--device", "cpu", "--seed", "1",
]
GRID = [*TINY, "--loss", "softmax", "--loss", "arcface"]


def _harness(args: list[str], cwd: Path, *, path: str | None = None, no_mlflow_env: bool = False
             ) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if path is not None:
        env["PATH"] = path
    if no_mlflow_env:  # MLflow's defaults: the file store under --reports, experiment "facebench"
        env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _runs(reports: Path) -> dict[str, dict]:
    """slug -> {"results": results.json, "run": run.json, "id": folder name}."""
    out = {}
    for folder in sorted((reports / "runs").iterdir()):
        info = json.loads((folder / "run.json").read_text())
        out[info["slug"]] = {"results": json.loads((folder / "results.json").read_text()), "run": info,
                             "id": folder.name}
    return out


def _metrics(results: dict) -> dict:
    return {m["name"]: (m["value"], m.get("ci")) for m in results["metrics"]}


# ----------------------------------------------------------- the settings
@pytest.mark.parametrize("text, minutes", [
    ("90", 90), (90, 90), ("5:30", 6), ("1:30:00", 90), ("0:0:61", 2), ("1-2", 1560), ("2-00:00:00", 2880),
    ("1-0:30", 1470),
])
def test_slurm_time_formats(text, minutes):
    assert slurm_minutes(text) == minutes


@pytest.mark.parametrize("bad, message", [
    ({"time": "soon"}, "expected a Slurm time limit"),
    ({"time": "0:30"}, "expected a Slurm time limit"),  # under a minute
    ({"mem": "lots"}, "expected a size such as 32G"),
    ({"gpus_per_node": -1}, r"gpus_per_node=-1: expected an integer in \[0, 1024\]"),
    ({"cpus_per_task": 0}, "cpus_per_task=0"),
    ({"partition": "gpu; rm"}, "expected a partition name"),
    ({"extra": ["partition=gpu"]}, r"set launcher.slurm.partition \(--slurm-partition\) instead"),
    ({"extra": ["array=0-9"]}, "submitit set it for each job"),
    ({"extra": ["=vision"]}, "is not an sbatch option KEY=VALUE"),
    ({"setup": ["module load a\nrm -rf"]}, "is not one shell line"),
])
def test_bad_slurm_settings_are_one_line_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as info:
        SlurmSettings(**bad)
    assert "\n" not in str(info.value)


def test_unknown_slurm_key_and_bad_combinations_are_refused():
    with pytest.raises(ConfigError, match="unknown launcher.slurm setting 'partiton' — did you mean 'partition'"):
        RunConfig.from_mapping({"launcher": {"cluster": "slurm", "slurm": {"partiton": "gpu"}}})
    with pytest.raises(ConfigError, match="cluster slurm runs each cell of the grid as a job of one process"):
        LauncherSettings(cluster="slurm", nproc_per_node=2)
    with pytest.raises(ConfigError, match="launcher.cluster='pbs': expected one of slurm, submitit-local"):
        LauncherSettings(cluster="pbs")


def test_launcher_round_trips_through_yaml_and_stays_out_of_the_hash():
    import yaml

    cfg = RunConfig(backbones=("resnet20",), launcher={
        "cluster": "slurm", "slurm": {"partition": "gpu", "mem": "32gb", "extra": ["qos=high"], "setup": ["x"]}})
    back = RunConfig.from_mapping(yaml.safe_load(yaml.safe_dump(cfg.to_mapping(launcher=True))))
    assert back.launcher == cfg.launcher and back.launcher.slurm.mem == "32G"
    assert [r.config_hash() for r in cfg.expand()] == [r.config_hash() for r in RunConfig(
        backbones=("resnet20",)).expand()]


def test_sbatch_parameters_name_every_setting():
    s = SlurmSettings(partition="gpu", gpus_per_node=2, cpus_per_task=8, time="1-00:00:00", mem="64G",
                      extra=("account=vision", "--qos=high", "exclusive"), setup=("module load cuda",))
    assert sbatch_parameters(s) == {
        "job_name": "facebench", "time": 1440, "nodes": 1, "ntasks_per_node": 1, "partition": "gpu",
        "gpus_per_node": 2, "cpus_per_task": 8, "mem": "64G", "setup": ["module load cuda"],
        "additional_parameters": {"account": "vision", "qos": "high", "exclusive": True}}
    # unset resources are left to the cluster's defaults
    assert sbatch_parameters(SlurmSettings()) == {"job_name": "facebench", "time": 60, "nodes": 1,
                                                  "ntasks_per_node": 1}
    assert local_parameters(SlurmSettings(time="2:00:00")) == {"timeout_min": 120, "gpus_per_node": 0}
    assert local_parameters(SlurmSettings(gpus_per_node=1, setup=("ulimit -n 4096",))) == {
        "timeout_min": 60, "gpus_per_node": 1, "setup": ["ulimit -n 4096"]}


def test_the_job_payload_reads_back_into_the_same_cell(tmp_path, fresh_registry):
    cfg = RunConfig(backbones=("resnet20",), losses=("softmax", "arcface"), reports=str(tmp_path),
                    launcher={"cluster": "slurm", "workers": 0, "slurm": {"partition": "gpu"}})
    runs = cfg.expand(fresh_registry)
    payload = cell_payload(cfg, runs[1], "abc")
    assert payload["config"]["launcher"] == {"workers": 0}  # no cluster: the job runs its cell itself
    back = RunConfig.from_mapping(payload["config"])
    assert back.launcher.cluster is None and back.launcher.workers == 0
    assert [r.config_hash() for r in back.expand(fresh_registry)] == [r.config_hash() for r in runs]
    assert payload["cell"] == runs[1].config_hash() and payload["cwd"] == os.getcwd()


def test_the_yaml_in_docs_scale_is_a_valid_grid(tmp_path, fresh_registry):
    from harness.config import load_yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "scale.md").read_text(encoding="utf-8")
    (text,) = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    (tmp_path / "grid.yaml").write_text(text)
    cfg = load_yaml(tmp_path / "grid.yaml")
    assert cfg.launcher.cluster == "slurm" and len(cfg.expand(fresh_registry)) == 4
    params = sbatch_parameters(cfg.launcher.slurm)
    assert params["time"] == 240 and params["additional_parameters"] == {"account": "vision"}
    assert params["setup"] == ["module load cuda"] and params["mem"] == "32G"


# ---------------------------------------------------- failure lines (fakes)
class _Paths:
    def __init__(self, stderr: Path) -> None:
        self.stderr = stderr


class _FakeJob:
    """The part of a submitit job the waiting loop reads."""

    def __init__(self, job_id: str, stderr: str | None, error: Exception | None, result=None, log=None) -> None:
        self.job_id, self._stderr, self._error, self._result = job_id, stderr, error, result
        self.paths = _Paths(log) if log else None

    def done(self) -> bool:
        return True

    def exception(self):
        return self._error

    def result(self):
        if self._error:
            raise self._error
        return self._result

    def stderr(self):
        return self._stderr


@pytest.fixture
def one_cell(fresh_registry):
    return RunConfig(backbones=("resnet20",), losses=("softmax",)).expand(fresh_registry)[0]


def test_a_failed_job_is_one_line_with_its_stderr_tail(one_cell, tmp_path):
    stderr = ("submitit INFO (2026-12-07 08:55:57,001) - Starting\nloading\n"
              "[1/1] resnet20-softmax — writing to r\n\n[1/1] resnet20-softmax — FAILED: no file missing.pt\n"
              "submitit ERROR (2026-12-07 08:55:57,890) - Submitted job triggered an exception\n"
              "Traceback (most recent call last):\n"
              '  File "x.py", line 3, in f\n    raise DataError(m)\n    ^^^^^^\n'
              "harness.errors.HarnessError: 1 of 1 run(s) failed: resnet20-softmax: no file missing.pt\n\n")
    cell = CellJob(one_cell, _FakeJob("77_1", stderr, RuntimeError("Job failed"), log=tmp_path / "77_1.err"))
    line = failure_line(cell)
    # the last three lines that say something: traceback frames and submitit's log lines left out
    assert line == ("job 77_1 (resnet20-softmax) failed: [1/1] resnet20-softmax — writing to r | "
                    "[1/1] resnet20-softmax — FAILED: no file missing.pt | harness.errors.HarnessError: 1 of 1 "
                    f"run(s) failed: resnet20-softmax: no file missing.pt (log: {tmp_path / '77_1.err'})")
    assert cell.error == line


def test_a_failed_job_without_stderr_falls_back_to_its_exception(one_cell):
    error = RuntimeError("Job 5 (task: 0) has not produced any output (state: NODE_FAIL)\n"
                         "No output/error stream produced ! Check: /x/5_0_log.out")
    cell = CellJob(one_cell, _FakeJob("5", None, error))
    assert failure_line(cell) == ("job 5 (resnet20-softmax) failed: Job 5 (task: 0) has not produced any output "
                                  "(state: NODE_FAIL) | No output/error stream produced ! Check: /x/5_0_log.out")


def test_a_long_tail_is_cut_and_a_finished_job_is_no_failure(one_cell):
    cell = CellJob(one_cell, _FakeJob("9", "x" * 5000, RuntimeError("boom")))
    line = failure_line(cell)
    assert "\n" not in line and len(line) < 500 and line.endswith("x" * 100)
    done = CellJob(one_cell, _FakeJob("10", "", None, result={"status": "finished", "run_dir": "r"}))
    assert failure_line(done) is None and done.result == {"status": "finished", "run_dir": "r"}


# ------------------------------------------------------ Slurm up to sbatch
def _fake_slurm(bin_dir: Path, record: Path) -> str:
    """A fake ``srun`` (submitit checks that it exists) and an ``sbatch`` that keeps the script."""
    bin_dir.mkdir()
    scripts = {
        "srun": "#!/bin/sh\nexit 0\n",
        "sbatch": f"#!/bin/sh\ncp \"$1\" '{record}'\necho 'Submitted batch job 4242'\n",
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def test_slurm_options_reach_the_sbatch_script(tmp_path):
    record = tmp_path / "submitted.sh"
    path = _fake_slurm(tmp_path / "bin", record)
    proc = _harness([*GRID, "--launcher", "slurm", "--slurm-partition", "gpu", "--slurm-gpus-per-node", "1",
                     "--slurm-cpus-per-task", "4", "--slurm-time", "1:30:00", "--slurm-mem", "16G",
                     "--slurm-extra", "account=vision", "--slurm-extra", "qos=high",
                     "--slurm-setup", "module load cuda", "--no-wait", "--reports", "r"], tmp_path, path=path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    script = record.read_text()
    for line in ["#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --time=90", "#SBATCH --mem=16G", "#SBATCH --account=vision", "#SBATCH --qos=high",
                 "#SBATCH --array=0-1%2", "#SBATCH --job-name=facebench", "#SBATCH --nodes=1"]:
        assert line in script.splitlines(), (line, script)
    assert "module load cuda" in script.splitlines()
    logs = (tmp_path / "r" / "slurm").resolve()
    assert f"--output={logs}/%A_%a/%A_%a_0_log.out" in script
    # --no-wait: one job (array task) per cell, the log folder, nothing run yet
    out = proc.stdout.splitlines()
    assert "job 4242_0\tresnet20-softmax" in out[0] and "job 4242_1\tresnet20-arcface" in out[1]
    assert f"logs: {logs}" in proc.stdout
    assert not (tmp_path / "r" / "runs").exists()


def test_the_executor_carries_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_slurm(tmp_path / "bin", tmp_path / "unused.sh"))
    s = SlurmSettings(partition="a100", gpus_per_node=8, time="30", extra=("constraint=h100",))
    ex = make_executor("slurm", s, tmp_path / "logs")
    assert {k: ex.parameters[k] for k in ("partition", "gpus_per_node", "time")} == {
        "partition": "a100", "gpus_per_node": 8, "time": 30}
    text = ex._make_submission_file_text("python -m x", "uid")  # the sbatch script, as submitted
    assert "#SBATCH --constraint=h100" in text and "#SBATCH --gpus-per-node=8" in text
    local = make_executor("submitit-local", s, tmp_path / "logs")
    assert local.parameters["timeout_min"] == 30


def test_slurm_missing_and_stray_flags_are_one_line_errors(tmp_path):
    bare = f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"
    if any((Path(d) / "srun").exists() for d in bare.split(os.pathsep)):
        pytest.skip("this machine has a real srun")
    proc = _harness([*GRID, "--launcher", "slurm", "--reports", "r"], tmp_path, path=bare)
    assert proc.returncode == 2 and "no Slurm on this machine (srun is not on PATH)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    stray = _harness([*GRID, "--slurm-partition", "gpu", "--no-wait", "--reports", "r"], tmp_path)
    assert stray.returncode == 2
    assert "--slurm-partition, --no-wait: only meaningful with --launcher slurm or submitit-local" in stray.stderr


# --------------------------------------- a real 2-cell grid, one job per cell
def test_a_grid_of_local_jobs_equals_the_grid_in_one_process(tmp_path):
    jobs = _harness([*GRID, "--launcher", "submitit-local", "--reports", "jobs"], tmp_path)
    assert jobs.returncode == 0, jobs.stderr[-3000:]
    progress = [ln for ln in jobs.stderr.splitlines() if ln.startswith(("[1/2] job ", "[2/2] job "))]
    assert len(progress) == 2 and all(": finished in " in ln for ln in progress), jobs.stderr[-3000:]
    one = _harness([*GRID, "--reports", "one"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]

    a, b = _runs(tmp_path / "jobs"), _runs(tmp_path / "one")
    assert set(a) == set(b) == {"resnet20-softmax", "resnet20-arcface"}
    for slug in a:
        ra, rb = a[slug]["results"], b[slug]["results"]
        assert ra["status"] == rb["status"] == "finished"
        assert ra["config_hash"] == rb["config_hash"]
        assert _metrics(ra) == _metrics(rb), slug  # equal, not close
        # one grid: the jobs' cells carry the grid id the in-process grid has
        assert a[slug]["run"]["grid_id"] == b[slug]["run"]["grid_id"] is not None
    gid = a["resnet20-softmax"]["run"]["grid_id"]
    index = (tmp_path / "jobs" / "index.html").read_text()
    assert all(a[slug]["id"] in index for slug in a)  # the index lists both cells
    grid_page = (tmp_path / "jobs" / "grids" / f"{gid}.html").read_text()
    assert all(a[slug]["id"] in grid_page for slug in a)
    # each cell ran as a job of its own: submitit's per-job logs name the run it wrote
    logs = sorted((tmp_path / "jobs" / "slurm").glob("*/*_log.err"))
    assert len(logs) == 2
    assert sorted(slug for slug in a if any(a[slug]["id"] in p.read_text() for p in logs)) == sorted(a)

    again = _harness([*GRID, "--launcher", "submitit-local", "--reports", "jobs"], tmp_path)
    assert again.returncode == 0 and again.stderr.count("already finished") == 2
    assert "submitted" not in again.stderr


def test_a_failed_job_is_reported_in_one_line_with_its_stderr(tmp_path):
    proc = _harness([*TINY, "--loss", "softmax", "--init", "missing.pt", "--launcher", "submitit-local",
                     "--reports", "r"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 1 job(s) failed: job ") and "(resnet20-softmax) failed: " in last
    assert "missing.pt" in last and "_log.err)" in last
    assert any(ln.startswith("[1/1] job ") and "failed" in ln for ln in proc.stderr.splitlines())
    assert not (tmp_path / "r" / "runs").exists() or not list((tmp_path / "r" / "runs").iterdir())


# ------------------------------------------- --log mlflow: every cell recorded
def test_log_mlflow_records_every_cell_of_a_job_grid(tmp_path, monkeypatch):
    """A 2-cell grid with --log mlflow: the cell that runs as a job is recorded by its job, the cell
    already finished (run here first, without --log) by the submitting process; each is an MLflow run
    that mlflow.search_runs finds with its report metrics, params and artifacts, recorded once."""
    mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install 'facebench[track]')")
    first = _harness([*TINY, "--loss", "softmax", "--reports", "r", "--log", "none"], tmp_path, no_mlflow_env=True)
    assert first.returncode == 0, first.stderr[-3000:]
    grid = [*GRID, "--launcher", "submitit-local", "--reports", "r", "--log", "mlflow"]
    jobs = _harness(grid, tmp_path, no_mlflow_env=True)
    assert jobs.returncode == 0, jobs.stderr[-3000:]
    assert "submitted 1 job(s)" in jobs.stderr and jobs.stderr.count("already finished") == 1

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri((tmp_path / "r" / "mlruns").resolve().as_uri())
    client = mlflow.tracking.MlflowClient()
    names = [e.name for e in client.search_experiments()]
    assert names.count("facebench") == 1  # one, though the submitter and each job open it
    found = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["facebench"], output_format="list")}
    runs = _runs(tmp_path / "r")
    assert set(found) == {runs[slug]["id"] for slug in runs}  # one MLflow run per cell, named by its folder
    for slug, info in runs.items():
        run, results = found[info["id"]], info["results"]
        assert run.info.status == "FINISHED" and results["status"] == "finished"
        assert run.data.params["components.loss"] == slug.split("-")[1]
        assert run.data.params["task"] == "recognition" and run.data.params["components.backbone"] == "resnet20"
        reported = {m["name"]: m["value"] for m in results["metrics"]}
        finite = {k: v for k, v in reported.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        assert finite and {k: run.data.metrics.get(k) for k in finite} == pytest.approx(finite)
        files = {f.path for f in client.list_artifacts(run.info.run_id, "report")}
        assert files == {"report/results.json", "report/index.html"}
    # the job also logged its training while it trained (the MLflow run its report continues)
    arcface = found[runs["resnet20-arcface"]["id"]]
    history = sorted(client.get_metric_history(arcface.info.run_id, "train/loss"), key=lambda h: h.step)
    assert [h.value for h in history] == pytest.approx(
        runs["resnet20-arcface"]["results"]["curves"]["training"]["loss"], rel=1e-12)

    again = _harness(grid, tmp_path, no_mlflow_env=True)
    assert again.returncode == 0 and again.stderr.count("already finished") == 2, again.stderr[-3000:]
    assert len(mlflow.search_runs(experiment_names=["facebench"], output_format="list")) == 2  # recorded once
