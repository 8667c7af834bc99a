"""Every metric record in ``results.json`` that can have a confidence interval has one.

Each task runs end to end on its small fixture (real data from FACEBENCH_DATA, skipped with a
reason when absent) and the test walks every metric record of the results -- the headline
metrics and those of ``sections.other_evals`` / ``sections.other_identification_evals`` -- and
checks that each record of a kind that can have an interval carries ``ci = [low, high]`` and
``meta.ci`` stating method, unit, level, B and seed.

The record kinds that cannot have one, and why, are listed in :data:`NO_INTERVAL`; a record
whose value is undefined (``None``: e.g. TAR at a FAR below 1 / impostor pairs) has none either.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from tests.conftest import need_data

#: record kinds that cannot have an interval: (name pattern, when, why)
NO_INTERVAL: list[tuple[str, str, str]] = [
    (r"(_per_s|^ms_.*|_ms|^wall_s)$", "always",
     "a timing of this machine (images per second, ms per image), not an estimate from sampled faces or pairs"),
    (r"^(jitter|fps|frames_with_shape|nme)_.*", "tracking",
     "one video: its frames are serially dependent, so resampling frames as independent would understate the "
     "spread; an interval needs several videos (or a block bootstrap over frames)"),
    (r"^accuracy_(clean|meshed|restored)$", "inpainting over one fold",
     "resubstitution: the threshold is chosen on the very pairs it is measured on, so the value is optimistic "
     "by construction and an interval around it would not cover what a fixed threshold reaches"),
]
BINOMIAL = ("clopper-pearson", "wilson")
B = 100  # replicates: small, the walk checks presence and statement, not width


def _exempt(record: dict[str, Any], results: dict[str, Any]) -> str | None:
    name = str(record["name"])
    for pattern, when, why in NO_INTERVAL:
        if not re.search(pattern, name):
            continue
        if when == "always":
            return why
        if when == "inpainting over one fold" and results.get("protocol", {}).get("folds") == 1:
            return why
        if when == "tracking" and results.get("task") == "tracking":
            return why
    return None


def _records(results: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for m in results.get("metrics") or []:
        yield "metrics", m
    for key, value in (results.get("sections") or {}).items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and "metrics" in v for v in value):
            for i, other in enumerate(value):
                for m in other["metrics"]:
                    yield f"sections.{key}[{i}]", m


def walk(results: dict[str, Any]) -> dict[str, int]:
    """Check every record; returns counts of records with an interval, exempt and undefined."""
    counts = {"with_ci": 0, "exempt": 0, "undefined": 0}
    for where, m in _records(results):
        label = f"{where}: {m['name']}"
        if m.get("value") is None:
            assert m.get("ci") is None, label
            counts["undefined"] += 1
            continue
        if _exempt(m, results):
            counts["exempt"] += 1
            continue
        assert m.get("ci") is not None, f"{label} has no interval"
        ci = (m.get("meta") or {}).get("ci") or {}
        assert {"method", "unit", "level", "B", "seed"} <= set(ci), f"{label}: {ci}"
        assert m["ci"] == [ci["low"], ci["high"]] and ci["low"] <= ci["high"], label
        assert 0 < ci["level"] < 1 and ci["unit"], label
        if ci["method"] in BINOMIAL:  # exact at a fixed threshold: no replicates, no seed
            assert ci["B"] is None and ci["seed"] is None and ci["unit"] == "trials", label
        else:
            assert ci["B"] == B and isinstance(ci["seed"], int), label
        counts["with_ci"] += 1
    return counts


# ------------------------------------------------------------------ the runs
@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")


def _config(tmp_path: Path) -> str:
    path = tmp_path / "intervals.yaml"
    path.write_text(f"intervals:\n  bootstrap: {B}\n")
    return str(path)


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    from harness.cli import main

    reports = tmp_path / "reports"
    assert main(["run", "--config", _config(tmp_path), *args, "--reports", str(reports)]) == 0
    (path,) = reports.glob("runs/*/results.json")
    return json.loads(path.read_text())


def test_verification_and_its_other_evals(tmp_path, quiet):
    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    att = need_data("att_faces")
    res = _run(tmp_path, "--recognizer", "example_pixels", "--eval", f"att={att}", "-o", "att.test_subjects=31-38",
               "-o", "att.pairs_per_fold=20",
               "--eval", "synthetic", "-o", "synthetic.test_identities=8", "-o", "synthetic.images_per_identity=4",
               "-o", "synthetic.pairs_per_fold=12", "-o", "synthetic.folds=2")
    counts = walk(res)
    assert res["sections"]["other_evals"] and counts["with_ci"] >= 12, counts
    other = res["sections"]["other_evals"][0]
    assert other["sections"]["intervals"]["B"] == B  # the statement travels with the other eval
    with np.load(next((tmp_path / "reports").glob("runs/*/scores.npz"))) as z:
        assert z["subject_a"].size == z["score"].size == z["subject_b"].size  # harness score redoes the subjects


def test_identification_closed_and_open_set(tmp_path, quiet):
    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    att = need_data("att_faces")
    res = _run(tmp_path, "--recognizer", "example_pixels", "--eval", f"att={att}", "-o", "att.test_subjects=31-38",
               "--protocol", "all", "-o", "identification.trials=2")
    counts = walk(res)
    by = {m["name"]: m for m in res["metrics"]}
    assert by["rank1_hit_at_fpir_1e-1"]["ci"] is not None and by["rank1"]["meta"]["ci"]["unit"] == "subjects"
    assert counts["with_ci"] >= 12, counts  # verification, rank-k, the open set at FPIR 1e-1 (lower: n/a)


def test_ijb_template_protocols(tmp_path, quiet):
    from tests.harness.tasks.test_templates import build_ijb_fixture

    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    lfw = need_data("lfw_home/lfw_funneled")
    build_ijb_fixture(lfw, tmp_path / "IJBC", n_ids=8)
    res = _run(tmp_path, "--recognizer", "example_pixels", "--eval", f"ijb={tmp_path / 'IJBC'}")
    counts = walk(res)
    by = {m["name"]: m for m in res["metrics"]}
    assert by["tar_at_far_1e-1"]["meta"]["ci"]["unit"] == "subjects"  # the 1:N files name every template's subject
    assert by["g1_rank1"]["meta"]["ci"]["unit"] == "subjects" and counts["with_ci"] >= 7, counts
    assert res["sections"]["intervals"]["search_unit"].startswith("probe subjects")


def test_detection(tmp_path, quiet):
    pytest.importorskip("cv2")
    wider = need_data("wider")
    res = _run(tmp_path, "--detector", "haar", "--eval", f"wider={wider}")
    counts = walk(res)
    assert counts["with_ci"] == 3 and counts["exempt"] == 1, counts  # AP easy / medium / hard; speed


def test_liveness(tmp_path, quiet):
    from harness.registry import Registry, reset_registry
    from tests.harness.tasks.test_liveness_task import DEV_ITEMS, TEST_ITEMS, FixtureLiveness, _write

    pytest.importorskip("cv2")
    data = tmp_path / "spoof"
    _write(data, "test", TEST_ITEMS * 4)
    _write(data, "dev", DEV_ITEMS)
    reset_registry(Registry(plugins=[FixtureLiveness]))
    try:
        res = _run(tmp_path, "--liveness", "pixel_score", "--eval", f"spoof={data}", "-o",
                   "spoof.aligned=arcface_112")
    finally:
        reset_registry(None)
    counts = walk(res)
    assert counts["with_ci"] >= 6, counts  # APCER, BPCER (binomial), ACER, HTER, EER, AUC


def test_inpainting_one_fold(tmp_path, fresh_registry):
    from harness.config import DataRef, IntervalSettings, RunSpec, TrainSettings
    from harness.results import RunStore
    from harness.tasks import TaskContext
    from harness.tasks.inpainting import run

    pytest.importorskip("cv2")
    pytest.importorskip("dlib")
    lfw_home = need_data("lfw_home")
    store = RunStore(tmp_path / "reports")
    ctx = TaskContext(registry=fresh_registry, run_dir=store.create("inpaint", "0" * 10), cache_dir=tmp_path / "c",
                      progress=False, log=lambda m: None, extra={"max_pairs": 24})
    spec = RunSpec(task="inpainting", components={"inpainter": "telea", "recognizer": "dlib_resnet"}, train=(),
                   eval=(DataRef("lfw", str(lfw_home)),), options={}, training=TrainSettings(), seed=0,
                   eval_folds=(0,), intervals=IntervalSettings(bootstrap=B))
    res = run(spec, ctx)
    counts = walk(res)
    by = {m["name"]: m for m in res["metrics"]}
    for name in ("psnr_restored", "ssim_meshed", "mask_iou", "eer_meshed", "auc_restored"):
        assert by[name]["ci"] is not None, name
    assert counts["exempt"] == 3 and "accuracy_*" in res["sections"]["intervals"]["without"], counts


def test_landmarks(tmp_path, quiet):
    pytest.importorskip("dlib")
    root = need_data("landmarks/aflw2000_prnet")
    res = _run(tmp_path, "--landmarker", "dlib_68", "--eval", f"aflw2000={root}")
    counts = walk(res)
    by = {m["name"]: m for m in res["metrics"]}
    assert by["nme_68pt_box"]["meta"]["ci"]["unit"] == "faces"
    assert by["failure_rate_68pt_at_0.08"]["meta"]["ci"]["method"] == "clopper-pearson"
    assert counts["with_ci"] >= 8 and res["sections"]["intervals"]["unit"] == "faces", counts


def test_tracking_is_listed_as_having_none(tmp_path, quiet):
    pytest.importorskip("dlib")
    pytest.importorskip("cv2")
    clip = need_data("landmarks/mmpose_samples/300vw/001")
    res = _run(tmp_path, "--landmarker", "dlib_68", "--eval", f"pts={clip}", "--protocol", "tracking")
    counts = walk(res)
    assert counts["with_ci"] == 0 and counts["exempt"] + counts["undefined"] == len(res["metrics"]), counts
