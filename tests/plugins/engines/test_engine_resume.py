"""The issue's "done when": a run SIGKILLed after a checkpoint and resumed in
a new process ends with the same weights and history as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from _engine_resume_script import run as reference_run

SCRIPT = Path(__file__).with_name("_engine_resume_script.py")
DETERMINISTIC_KEYS = ("step", "epoch", "loss", "lr", "accuracy")


class _Killer(threading.Thread):
    """Watches a slowed run and SIGKILLs it once a checkpoint of step >= min_step exists."""

    def __init__(self, proc: subprocess.Popen, meta: Path, min_step: int = 10) -> None:
        super().__init__(daemon=True)
        self.proc, self.meta, self.min_step = proc, meta, min_step
        self.seen_step = -1

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.meta.exists():
                try:
                    self.seen_step = json.loads(self.meta.read_text())["step"]
                except (ValueError, KeyError, OSError):
                    self.seen_step = -1
                if self.seen_step >= self.min_step:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    return
            time.sleep(0.005)


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path: Path):
    work = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(work), str(tmp_path / "never.pt"), "0.01"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = _Killer(proc, work / "checkpoints" / "last.json")
    killer.start()
    try:
        # the uninterrupted reference runs here meanwhile
        ref = reference_run(tmp_path / "ref")
        killer.join(timeout=150)
    finally:
        if proc.poll() is None and killer.is_alive():
            proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"run was not killed mid-way (rc {proc.returncode}): {err}"
    assert not (tmp_path / "never.pt").exists(), "the killed run finished before the kill"

    ck = torch.load(work / "checkpoints" / "last.pt", weights_only=True)
    assert 10 <= ck["step"] < 30 and ck["step"] >= killer.seen_step
    assert ck["step"] % 5 == 0 or ck["position"] == 0  # every 5 steps, or an epoch end

    res_out = tmp_path / "resumed.pt"
    r = subprocess.run([sys.executable, str(SCRIPT), str(work), str(res_out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    res = torch.load(res_out, weights_only=True)

    assert ref["resumed_from_step"] is None
    assert res["resumed_from_step"] == ck["step"]
    assert ref["steps"] == res["steps"] == 30
    assert ref["stopped_by"] == res["stopped_by"] == "max_steps"
    for part in ("model", "loss"):
        assert ref[part].keys() == res[part].keys()
        for key, value in ref[part].items():
            torch.testing.assert_close(res[part][key], value, rtol=0, atol=1e-6, msg=f"{part}.{key}")
    for key in DETERMINISTIC_KEYS:
        a, b = ref["history"][key], res["history"][key]
        assert len(a) == len(b) == 30, key
        assert all((x is None and y is None) or abs(x - y) <= 1e-6 for x, y in zip(a, b)), key
    assert [e["epoch"] for e in ref["history"]["eval"]] == [1, 2, 3]
    assert [e["epoch"] for e in res["history"]["eval"]] == [1, 2, 3]
    for a, b in zip(ref["history"]["eval"], res["history"]["eval"]):
        assert a["step"] == b["step"] and abs(a["mean_w"] - b["mean_w"]) <= 1e-6
