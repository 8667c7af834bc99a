"""The tf engine's exact resume: a training process SIGKILLed after a checkpoint and resumed in
a new process ends with the weights, loss state, random state and history of a run never
interrupted (the torch engine's test_engine_resume.py, for TensorFlow).

The network has dropout (its random state must be checkpointed), BatchNorm (moving statistics),
the center loss (non-trainable centres moved every step) and AdamW (two slots and a step count).
Every process trains on one TensorFlow thread, so the runs are bit-reproducible.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                reason="tensorflow is not installed (pip install 'facebench[tf]')")

SCRIPT = Path(__file__).with_name("_tf_resume_script.py")
STEPS, EVERY, MIN_STEP = 30, 5, 10
DETERMINISTIC_KEYS = ("step", "epoch", "loss", "lr", "accuracy")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}


def _checkpoint_meta(path: Path) -> dict:
    """The meta record of a tf-engine checkpoint, read without TensorFlow."""
    with zipfile.ZipFile(path) as z, z.open("meta.npy") as fh:
        return json.loads(np.load(io.BytesIO(fh.read())).tobytes().decode())


class _Killer(threading.Thread):
    """Watches a slowed run and SIGKILLs it once a checkpoint of step >= min_step exists."""

    def __init__(self, proc: subprocess.Popen, checkpoint: Path, min_step: int = MIN_STEP) -> None:
        super().__init__(daemon=True)
        self.proc, self.checkpoint, self.min_step = proc, checkpoint, min_step
        self.seen_step = -1

    def run(self) -> None:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.checkpoint.exists():
                try:
                    self.seen_step = _checkpoint_meta(self.checkpoint)["step"]
                except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                    self.seen_step = -1
                if self.seen_step >= self.min_step:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    return
            time.sleep(0.005)


def _load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(arrays.pop("about").tobytes().decode())


def test_killed_and_resumed_run_equals_uninterrupted_run(tmp_path: Path):
    work, never = tmp_path / "killed", tmp_path / "never.npz"
    killed = subprocess.Popen([sys.executable, str(SCRIPT), str(work), str(never), "0.02"], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = _Killer(killed, work / "checkpoints" / "last.tf.npz")
    killer.start()
    # the uninterrupted reference, in a process of its own (one TensorFlow thread, like the others)
    ref = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "ref"), str(tmp_path / "ref.npz")],
                         env=_env(), capture_output=True, text=True, timeout=300)
    try:
        killer.join(timeout=200)
    finally:
        if killed.poll() is None and killer.is_alive():
            killed.kill()
        _, err = killed.communicate(timeout=60)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert killed.returncode == -signal.SIGKILL, f"run was not killed mid-way (rc {killed.returncode}): {err[-3000:]}"
    assert not never.exists(), "the killed run finished before the kill"

    meta = _checkpoint_meta(work / "checkpoints" / "last.tf.npz")
    assert MIN_STEP <= meta["step"] < STEPS and meta["step"] >= killer.seen_step
    assert meta["step"] % EVERY == 0 or meta["position"] == 0  # every 5 steps, or an epoch's end

    resumed = subprocess.run([sys.executable, str(SCRIPT), str(work), str(tmp_path / "resumed.npz")],
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref_arrays, ref_about = _load(tmp_path / "ref.npz")
    res_arrays, res_about = _load(tmp_path / "resumed.npz")

    assert ref_about["resumed_from_step"] is None and res_about["resumed_from_step"] == meta["step"]
    assert ref_about["steps"] == res_about["steps"] == STEPS
    assert ref_about["stopped_by"] == res_about["stopped_by"] == "max_steps"
    assert ref_arrays.keys() == res_arrays.keys()
    assert any(k.startswith("rng/") for k in ref_arrays), "the dropout layer's random state is not in the model"
    for key, value in ref_arrays.items():
        np.testing.assert_allclose(res_arrays[key], value, rtol=0, atol=1e-6, err_msg=key)
    for key in DETERMINISTIC_KEYS:
        a, b = ref_about["history"][key], res_about["history"][key]
        assert len(a) == len(b) == STEPS, key
        assert all((x is None and y is None) or abs(x - y) <= 1e-6 for x, y in zip(a, b)), key
    assert [e["epoch"] for e in ref_about["history"]["eval"]] == [1, 2, 3]
    assert [e["epoch"] for e in res_about["history"]["eval"]] == [1, 2, 3]
    for a, b in zip(ref_about["history"]["eval"], res_about["history"]["eval"]):
        assert a["step"] == b["step"] and abs(a["mean_w"] - b["mean_w"]) <= 1e-6
