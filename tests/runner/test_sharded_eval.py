"""Sharded evaluation under torchrun: ranks split the images, gather in order, score the same.

``harness run --nproc-per-node 2`` on an eval-only run (gloo on the CPU) must
write exactly the metrics and scores of one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import DataError
from tests.conftest import need_data
from tests.harness.tasks.test_eval_pipeline import _pairs_file

pytest.importorskip("cv2")


def _harness(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FACEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1", "FACEBENCH_COST": "0"}
    return subprocess.run([sys.executable, "-m", "harness", "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_two_gloo_ranks_score_exactly_like_one_process(tmp_path):
    pytest.importorskip("torch")
    lfw = need_data("lfw_home")
    pairs = _pairs_file(tmp_path)
    common = ["--recognizer", "sface", "--detector", "haar", "--eval", f"lfw={lfw}", "-o", f"lfw.pairs={pairs}"]
    # each rank runs its own pool of one worker (--workers travels to the ranks)
    two = _harness([*common, "--nproc-per-node", "2", "--workers", "1", "--reports", "two"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _harness([*common, "--workers", "0", "--reports", "one"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    out = {}
    for name in ("two", "one"):
        (path,) = (tmp_path / name / "runs").glob("*/results.json")
        out[name] = (json.loads(path.read_text()), np.load(path.parent / "scores.npz"))
    (a, sa), (b, sb) = out["two"], out["one"]
    assert a["status"] == b["status"] == "finished"
    assert a["provenance"]["distributed"]["world_size"] == 2
    assert a["config_hash"] == b["config_hash"]
    assert a["protocol"] == b["protocol"]
    assert [(m["name"], m["value"]) for m in a["metrics"]] == [(m["name"], m["value"]) for m in b["metrics"]]
    for k in sb.files:
        np.testing.assert_array_equal(sa[k], sb[k])
    pa = a["sections"]["pipeline"]
    assert pa["images"] == b["sections"]["pipeline"]["images"] == a["protocol"]["images"]
    assert pa["workers"] == 1 and pa["ranks"] == 2 and pa["detected"] == a["protocol"]["images"]
    assert "ranks" not in b["sections"]["pipeline"]
    # rank 0 wrote the whole detection store: a second sharded run detects nothing
    again = _harness([*common, "--nproc-per-node", "2", "--workers", "0", "--reports", "two", "--force"], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    latest = max((tmp_path / "two" / "runs").glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    assert json.loads(latest.read_text())["sections"]["pipeline"]["detected"] == 0


class _TwoRanks:
    """Rank 0 of two whose peer's part is given (the collective's contract, in one process)."""

    rank, world, main = 0, 2, True

    def __init__(self, other: dict) -> None:
        self.other = other

    def broadcast(self, obj):
        return obj

    def gather(self, obj):
        return [obj, self.other]


def _images(n: int):
    from harness.types import ImageSet

    rng = np.random.default_rng(1)
    pics = [rng.integers(0, 255, (64, 64, 3), np.uint8) for _ in range(n)]
    return ImageSet(keys=[str(i) for i in range(n)], labels=np.zeros(n, np.int64), loader=lambda k: pics[int(k)],
                    identities=("x",), aligned="arcface_112", info={"source": "mem"}), pics


def test_parts_of_the_ranks_are_put_back_in_order(fresh_registry):
    from harness.tasks._faces import face_crops

    images, pics = _images(5)
    # rank 1 of 2 has images 1 and 3 (every 2nd from 1)
    other = {"crops": [np.full((8, 8, 3), 1, np.uint8), np.full((8, 8, 3), 3, np.uint8)], "fallback": [False, False],
             "rows": [None, None], "detected": [], "embeddings": None, "seconds": {"decode": 1.0},
             "workers": 0, "embed_on": None, "why": "", "error": None}
    out = face_crops(images, np.arange(5), registry=fresh_registry, detector=None, template="arcface_112",
                     size=(8, 8), progress=False, collective=_TwoRanks(other))
    assert [int(c[0, 0, 0]) for c in out.crops[1::2]] == [1, 3]
    from harness.align import resize_to

    for i in (0, 2, 4):
        np.testing.assert_array_equal(out.crops[i], resize_to(pics[i], (8, 8)))
    assert out.stages["ranks"] == 2 and out.stages["seconds"]["decode"] >= 1.0


def test_an_error_on_another_rank_is_raised_on_this_one(fresh_registry):
    from harness.tasks._faces import face_crops

    images, _pics = _images(4)
    failed = {"error": ("DataError", "b.jpg: cannot decode the image (corrupt or not an image)")}
    with pytest.raises(DataError, match="b.jpg: cannot decode"):
        face_crops(images, np.arange(4), registry=fresh_registry, detector=None, template="arcface_112",
                   size=(8, 8), progress=False, collective=_TwoRanks(failed))
