"""The results store: naming, atomic writes, finding runs, provenance, crash safety."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.metrics import Metric
from harness.results import (
    SCHEMA_VERSION,
    ResultsError,
    RunDir,
    RunStore,
    atomic_write_json,
    atomic_write_text,
    collect_provenance,
)


def _results(**extra):
    return {"task": "recognition", "provenance": {"config": {}}, "metrics": [Metric("auc", 0.9)], **extra}


def test_create_names_runs_by_time_slug_and_hash(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("ResNet20 + ArcFace", "a1b2c3", grid_id="g")
    assert run.path.parent == tmp_path / "runs"
    date, clock, rest = run.run_id.split("-", 2)
    assert len(date) == 8 and len(clock) == 6 and rest == "resnet20-arcface-a1b2c3"
    assert run.config_hash == "a1b2c3" and run.grid_id == "g"
    # same config in the same second: a distinct folder, never a clash
    twins = [store.create("resnet20-arcface", "a1b2c3") for _ in range(3)]
    assert len({r.run_id for r in twins + [run]}) == 4
    with pytest.raises(ResultsError, match="config hash"):
        store.create("x", "../evil")


def test_runs_newest_first_and_get(tmp_path):
    store = RunStore(tmp_path)
    made = [store.create(f"run{i}", f"h{i}") for i in range(3)]
    assert store.runs() == made[::-1]
    assert store.get(made[1].run_id) == made[1]
    assert store.get(str(made[2].path)) == made[2]
    with pytest.raises(ResultsError, match="ambiguous"):
        store.get(made[0].run_id[:8])
    with pytest.raises(ResultsError, match="harness runs"):
        store.get("nope")
    assert RunStore(tmp_path / "empty").runs() == []


def test_write_results_adds_schema_orders_keys_and_reads_back(tmp_path):
    run = RunStore(tmp_path).create("x", "h1")
    path = run.write_results(_results(
        metrics=[Metric("eer", float("nan"), direction="lower"), {"name": "auc", "value": np.float32(0.5)}],
        curves={"roc": {"far": np.array([0.0, 1.0]), "tar": [0.0, float("inf")]}},
        protocol={"pairs": np.int64(6000)},
    ))
    text = path.read_text()
    data = json.loads(text)
    assert list(data)[:6] == ["schema_version", "run_id", "status", "task", "config_hash", "provenance"]
    assert data["schema_version"] == SCHEMA_VERSION and data["run_id"] == run.run_id
    assert data["status"] == "finished"
    assert data["metrics"][0]["value"] is None and data["metrics"][1]["value"] == 0.5
    assert data["curves"]["roc"]["tar"] == [0.0, None] and data["protocol"]["pairs"] == 6000
    assert "NaN" not in text and "Infinity" not in text
    assert run.read_results() == data
    assert run.status == "finished"


@pytest.mark.parametrize("bad, message", [
    ({"provenance": {}, "metrics": []}, "lack 'task'"),
    ({"task": "recognition", "metrics": []}, "lack 'provenance'"),
    ({"task": "recognition", "provenance": {}}, "lack 'metrics'"),
    ({"task": "juggling", "provenance": {}, "metrics": []}, "task 'juggling'"),
    ({"task": "recognition", "provenance": {}, "metrics": [], "status": "done"}, "status 'done'"),
    ({"task": "recognition", "provenance": [], "metrics": []}, "provenance"),
    ({"task": "recognition", "provenance": {}, "metrics": {"auc": 1}}, "list of Metric"),
    ({"task": "recognition", "provenance": {}, "metrics": [3.0]}, "not a Metric record"),
    ({"task": "recognition", "provenance": {}, "metrics": [], "x": object()}, "cannot store"),
])
def test_write_results_rejects_bad_results_clearly(tmp_path, bad, message):
    run = RunStore(tmp_path).create("x", "h")
    with pytest.raises(ResultsError, match=message) as info:
        run.write_results(bad)
    assert isinstance(info.value, HarnessError)
    assert not run.results_path.exists()


def test_read_results_errors_name_the_file(tmp_path):
    run = RunStore(tmp_path).create("x", "h")
    with pytest.raises(ResultsError, match="no results"):
        run.read_results()
    run.results_path.write_text("{trunc")
    with pytest.raises(ResultsError, match="not valid JSON"):
        run.read_results()
    assert run.status == "corrupt"
    run.results_path.write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ResultsError, match="upgrade facebench"):
        run.read_results()


def test_find_finished_and_unfinished(tmp_path):
    store = RunStore(tmp_path)
    assert store.find_finished("abc") is None and store.find_unfinished("abc") is None
    first = store.create("x", "abc")
    assert store.find_unfinished("abc") == first  # created, nothing written yet
    first.write_results(_results(status="running"))
    assert store.find_finished("abc") is None and store.find_unfinished("abc") == first
    first.set_status("finished")
    assert store.find_finished("abc") == first and store.find_unfinished("abc") is None
    second = store.create("x", "abc")
    second.write_results(_results(status="failed"))
    assert store.find_finished("abc") == first
    assert store.find_unfinished("abc") == second
    other = store.create("x", "abcd")
    other.write_results(_results())
    assert store.find_finished("abc") == first  # a hash is matched exactly, not by prefix


def test_arrays_round_trip_and_paths(tmp_path):
    run = RunStore(tmp_path).create("x", "h")
    scores = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    path = run.save_arrays("scores", scores=scores, labels=np.arange(1000) % 2)
    assert path.name == "scores.npz"
    back = run.load_arrays("scores")
    assert back["scores"].dtype == np.float32 and np.array_equal(back["scores"], scores)
    assert back["labels"].sum() == 500
    from harness.errors import DataError

    with pytest.raises(DataError, match="no arrays named 'nope'"):
        run.load_arrays("nope")
    with pytest.raises(ResultsError, match="invalid"):
        run.save_arrays("../x", a=[1])
    assert run.checkpoint_dir.is_dir() and run.checkpoint_dir.parent == run.path
    assert run.log_path.parent == run.path
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_replaces_whole_file_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b.json"
    atomic_write_json(target, {"v": 1})
    assert json.loads(target.read_text()) == {"v": 1}
    # a failure mid-write leaves the old file and no temporary file
    import harness.results as results

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.json"]


def test_provenance_config_first_and_no_framework_import(tmp_path):
    code = textwrap.dedent("""
        import json, sys
        from harness.results import collect_provenance
        p = collect_provenance({"task": "recognition"}, {"backbone": {"name": "resnet20"}}, 7, grid_id="g1")
        heavy = [m for m in ("torch", "tensorflow", "cv2", "dlib", "onnxruntime") if m in sys.modules]
        print(json.dumps({"p": p, "heavy": heavy}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    p = data["p"]
    assert data["heavy"] == []
    assert list(p)[0] == "config"
    assert p["components"]["backbone"]["name"] == "resnet20"
    assert p["seed"] == 7 and p["grid_id"] == "g1"
    assert p["versions"]["facebench"] and "numpy" in p["versions"]["frameworks"]
    assert p["hardware"]["cpu_count"] >= 1 and p["hardware"]["memory_bytes"] > 0
    assert p["git"] is None or len(p["git"]["commit"]) == 40
    assert p["created"].endswith("+00:00")


def test_git_is_none_outside_a_checkout(monkeypatch, tmp_path):
    import harness.results as results

    def fail(*a, **k):
        raise FileNotFoundError("git")

    monkeypatch.setattr(results.subprocess, "run", fail)
    assert collect_provenance({}, {}, 0)["git"] is None


_WRITER = textwrap.dedent("""
    import sys
    from harness.results import RunDir
    run = RunDir(sys.argv[1])
    i = int(sys.argv[2])

    def write(i):
        run.write_results({"task": "scores", "provenance": {"i": i}, "metrics": [],
                           "curves": {"payload": [i] * 100000}, "i": i})
        run.save_arrays("scores", a=[i] * 50000)

    i += 1
    write(i)
    print("ready", flush=True)
    while True:  # killed at a random moment, mostly in the middle of a write
        i += 1
        write(i)
""")


def test_sigkill_never_leaves_a_truncated_results_file(tmp_path):
    """A writer killed at random moments leaves the previous or the new complete file."""
    run = RunStore(tmp_path).create("kill", "h")
    rng = random.Random(1234)
    last = 0
    leftovers = 0
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(run.path), str(last)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        leftovers += len(list(run.path.glob(".*.tmp")))
        if not run.results_path.exists():
            continue
        data = json.loads(run.results_path.read_text())  # never truncated
        i = data["i"]
        assert data["provenance"] == {"i": i} and set(data["curves"]["payload"]) == {i}
        assert len(data["curves"]["payload"]) == 100000
        assert i >= last
        last = i
        if (run.path / "scores.npz").exists():
            a = run.load_arrays("scores")["a"]
            assert a.size == 50000 and len(set(a.tolist())) == 1
    assert last > 0, "the writer never completed a single write"
    print(f"{leftovers} temporary files left by writes cut short (expected after SIGKILL)")


@pytest.mark.parametrize("sub", ["", "sub", "sub/deeper"])
def test_a_reports_path_through_a_file_is_refused_before_anything_is_written(tmp_path, sub):
    from harness.results import ResultsError, RunStore

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    store = RunStore(blocker / sub if sub else blocker)
    for call in (store.check_writable, lambda: store.create("slug", "abc123")):
        with pytest.raises(ResultsError, match=rf"{blocker} is a file, not a folder.*--reports"):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"] and blocker.read_text() == "x"


def test_a_runs_entry_that_is_a_file_is_refused(tmp_path):
    from harness.results import ResultsError, RunStore

    (tmp_path / "runs").write_text("")
    with pytest.raises(ResultsError, match=r"runs is a file, not a folder \(it is a part of"):
        RunStore(tmp_path).create("slug", "abc123")
