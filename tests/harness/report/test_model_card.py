"""Compute beside accuracy and the reproducibility manifest on the run and grid pages.

Pages are built from results dicts shaped like those the recognition task
writes (``sections.model_card``, ``sections.manifest``); the fingerprints are
made by the task's own function so a changed field really changes them.
"""

from __future__ import annotations

import copy

from harness.report._build import build_grid_page, build_run_page
from harness.report._model_card import manifest_mismatches
from harness.report._render import _render, environment
from harness.tasks._manifest import fingerprint

MANIFEST = {
    "model": "sface", "alignment": "arcface_112", "input_size": [112, 112], "color": "rgb",
    "normalisation": {"scale": 1.0, "mean": [0.0] * 3, "std": [1.0] * 3}, "flip": "none", "batch_size": 64,
    "precision": "float32", "model_sha256": "0b" * 32, "model_sha256_of": "the model file",
    "runtimes": {"onnxruntime": "1.20.0", "opencv": "4.10.0", "torch": None, "dlib": None},
    "compared_runtimes": ["onnxruntime", "opencv"],
}


def _results(model: str, acc: float, *, card: dict | None = None, manifest: dict | None = None,
             eval_: str = "lfw") -> dict:
    m = copy.deepcopy(manifest if manifest is not None else {**MANIFEST, "model": model})
    m["fingerprint"] = fingerprint(m)
    sections = {"manifest": m}
    sections["model_card"] = card if card is not None else {
        "model": model, "params": 9_667_074, "gflops": 1.1483, "forward_passes_per_face": 1,
        "gflops_per_face": 1.1483, "embedding_size": 128, "device": "CPUExecutionProvider",
        "ms_per_face_batch1": 9.5, "img_per_s": 140.0, "throughput_batch": 64, "repeats_batch1": 5,
        "repeats_batch": 5, "budget_s": 10.0, "wall_s": 4.2, "threads": {"OMP_NUM_THREADS": "1"},
        "load_average": [1.0, 1.2, 1.3], "compute_method": "ONNX graph",
    }
    return {
        "task": "recognition", "status": "finished", "run_id": f"run-{model}",
        "provenance": {"config": {"components": {"recognizer": model}, "eval": [eval_]}},
        "protocol": {"dataset": eval_, "pairs": 6000},
        "metrics": [{"name": "accuracy", "value": acc, "direction": "higher", "std": 0.003},
                    {"name": "tar_at_far_1e-3", "value": 0.97, "direction": "higher"}],
        "sections": sections,
    }


def _grid(runs):
    return build_grid_page("g1", runs, run_href=lambda rid: f"../runs/{rid}/index.html", index_href="../index.html")


def test_run_page_puts_accuracy_and_cost_in_one_table():
    page = build_run_page(_results("sface", 0.9925), index_href="", grid_href="")
    card = next(s for s in page.sections if s.id == "model-card")
    (table,) = card.tables
    labels = [c.label for c in table.columns]
    assert labels[:3] == ["Model", "Accuracy", "TAR @ FAR 1e-3"]
    assert {"Params", "GFLOPs / face", "ms / face (b1)", "img/s (b64)", "Embedding"} <= set(labels)
    row = {c.label: cell.text for c, cell in zip(table.columns, table.rows[0])}
    assert row["Accuracy"] == "99.25%" and row["Params"] == "9.67 M" and row["GFLOPs / face"] == "1.148"
    assert row["ms / face (b1)"] == "9.50" and row["img/s (b64)"] == "140.0" and row["Embedding"] == "128"
    items = {i.key: i.value for i in card.items}
    assert "Load average (1, 5, 15 min)" in items and items["Device"] == "CPUExecutionProvider"
    html = _render(environment(), "run.html", page)
    assert 'id="model-card"' in html and 'id="manifest"' in html


def test_run_page_states_why_compute_is_not_counted_and_timing_skipped():
    card = {"model": "dlib_resnet", "params": None, "gflops": None, "forward_passes_per_face": 1,
            "gflops_per_face": None, "embedding_size": 128, "device": "cpu",
            "compute_na": "dlib's ResNet-29 is a serialized dlib DNN", "timing_skipped": "FACEBENCH_COST=off"}
    page = build_run_page(_results("dlib_resnet", 0.99, card=card), index_href="", grid_href="")
    sec = next(s for s in page.sections if s.id == "model-card")
    assert any("serialized dlib DNN" in n for n in sec.notes)
    assert any("FACEBENCH_COST=off" in n for n in sec.notes)
    row = {c.label: cell.text for c, cell in zip(sec.tables[0].columns, sec.tables[0].rows[0])}
    assert row["Params"] == row["GFLOPs / face"] == row["ms / face (b1)"] == "n/a"


def test_manifest_section_lists_every_choice_and_the_fingerprint():
    res = _results("sface", 0.99)
    page = build_run_page(res, index_href="", grid_href="")
    sec = next(s for s in page.sections if s.id == "manifest")
    items = {i.key: i.value for i in sec.items}
    assert items["Fingerprint"] == res["sections"]["manifest"]["fingerprint"]
    for key in ("Alignment template", "Crop size", "Colour order", "Normalisation", "Flip fusion", "Batch size",
                "Precision", "Model sha256", "Runtimes"):
        assert key in items, key
    assert items["Crop size"] == "112×112" and "onnxruntime 1.20.0" in items["Runtimes"]


def test_grid_shows_cost_columns_beside_accuracy_and_marks_the_best():
    fast = _results("sface", 0.9925)
    slow = _results("dlib_resnet", 0.9938, manifest={**MANIFEST, "model": "dlib_resnet"})
    slow["sections"]["model_card"] = {**fast["sections"]["model_card"], "model": "dlib_resnet",
                                      "ms_per_face_batch1": 30.0, "img_per_s": 40.0, "gflops_per_face": None,
                                      "params": None, "compute_na": "dlib"}
    slow["provenance"]["config"]["components"] = {"recognizer": "dlib_resnet"}
    page = _grid([("run-a", fast), ("run-b", slow)])
    labels = [c.label for c in page.table.columns]
    assert labels[-1] == "Status" and labels.index("Accuracy") < labels.index("Params")
    ms, ips, gf = labels.index("ms / face (b1)"), labels.index("img/s (b64)"), labels.index("GFLOPs / face")
    assert [r[ms].best for r in page.table.rows] == [True, False]  # lower latency wins
    assert [r[ips].best for r in page.table.rows] == [True, False]  # higher throughput wins
    assert [r[gf].text for r in page.table.rows] == ["1.148", "n/a"] and not any(r[gf].best for r in page.table.rows)
    assert all(len(r) == len(labels) for r in page.table.rows)
    assert not any(s.id == "manifest-mismatch" for s in page.sections)  # different models: no mismatch


def test_same_combination_with_another_manifest_is_flagged_not_equal():
    a = _results("sface", 0.9925)
    changed = copy.deepcopy(MANIFEST)
    changed["runtimes"]["onnxruntime"] = "1.21.0"
    changed["model_sha256"] = "ff" * 32
    b = _results("sface", 0.9925, manifest=changed)
    assert a["sections"]["manifest"]["fingerprint"] != b["sections"]["manifest"]["fingerprint"]
    ((ra, rb, fields),) = manifest_mismatches([("run-a", a), ("run-b", b)])
    assert (ra, rb) == ("run-a", "run-b")
    assert "model_sha256" in fields and "onnxruntime 1.20.0 vs 1.21.0" in fields
    page = _grid([("run-a", a), ("run-b", b)])
    sec = next(s for s in page.sections if s.id == "manifest-mismatch")
    assert "model_sha256" in sec.tables[0].rows[0][2].text
    col = [c.label for c in page.table.columns].index("Manifest")
    assert [r[col].note for r in page.table.rows] == ["≠", "≠"]
    html = _render(environment(), "grid.html", page)
    assert 'id="manifest-mismatch"' in html


def test_same_manifest_or_other_data_is_not_flagged():
    a, b = _results("sface", 0.9925), _results("sface", 0.9925)
    assert manifest_mismatches([("run-a", a), ("run-b", b)]) == []
    other_data = _results("sface", 0.95, manifest={**MANIFEST, "batch_size": 1}, eval_="cfp_fp")
    assert manifest_mismatches([("run-a", a), ("run-c", other_data)]) == []


def test_runs_without_a_model_card_keep_the_grid_as_it_was():
    plain = _results("sface", 0.99)
    del plain["sections"]["model_card"], plain["sections"]["manifest"]
    page = _grid([("run-a", plain), ("run-b", copy.deepcopy(plain))])
    assert "Params" not in [c.label for c in page.table.columns]
    ids = [s.id for s in build_run_page(plain, index_href="", grid_href="").sections]
    assert "model-card" not in ids and "manifest" not in ids
