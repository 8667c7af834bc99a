"""The page helpers for intervals and provenance, without a browser: interval
texts, the overlap rule, measurable TAR@FAR, bands, labels, and the run-level
statements (one fold, from scratch, detection subsets)."""

from __future__ import annotations

import pytest

from harness.report import _evidence as E
from harness.report import _format as F
from harness.report._build import _from_scratch, _op_label, _protocol_name, headline_names, protocol_box
from harness.report._svg import Series, line_chart
from harness.report.context import Cell


def _m(name, value, ci=None, **meta):
    return {"name": name, "value": value, "ci": ci, "direction": "higher", "meta": meta}


def test_ci_note_names_method_unit_b_seed_and_the_rule_of_three():
    boot = {"low": 0.9, "high": 0.95, "level": 0.95, "method": "bca", "unit": "subjects", "B": 1000, "seed": 3}
    assert E.ci_note(boot) == "95 % BCa bootstrap over subjects (identities with all their pairs), B = 1,000, seed 3"
    binom = {"level": 0.95, "method": "clopper-pearson", "unit": "trials", "errors": 0, "n": 3000,
             "rule_of_3": 0.000998}
    assert E.ci_note(binom) == ("95 % exact binomial (Clopper–Pearson), 0 errors in 3,000; "
                                "no error seen — rule of 3 upper bound 1e-3")
    assert E.ci_note({}) == ""
    assert "Wilson" in E.ci_note({"level": 0.9, "method": "wilson", "unit": "trials"})


@pytest.mark.parametrize("bounds, flagged", [
    ([(0.90, 0.94), (0.93, 0.97), (0.80, 0.85)], 1),  # the first overlaps the best, the third does not
    ([(0.90, 0.92), (0.95, 0.97), (0.80, 0.85)], 0),  # disjoint: all distinguishable
    ([(0.95, 0.97), (0.95, 0.97), None], 1),           # identical intervals; a run without one is left alone
    ([(0.90, 0.97), None, None], 0),                   # one interval: nothing to compare
])
def test_overlap_flags_follow_the_intervals(bounds, flagged):
    values = [None if b is None else (b[0] + b[1]) / 2 for b in bounds]
    cells = [Cell("x") for _ in bounds]
    assert E.flag_overlaps(cells, bounds, values, "higher") == flagged
    marked = [c for c in cells if E.NOT_DISTINGUISHABLE in c.title]
    assert len(marked) == (flagged + 1 if flagged else 0)
    assert all("≈" in c.note for c in marked)


def test_lower_is_better_picks_the_lowest_as_best():
    cells = [Cell("a"), Cell("b")]
    E.flag_overlaps(cells, [(0.05, 0.08), (0.07, 0.10)], [0.06, 0.085], "lower")
    assert cells[0].title.startswith("best") and "from the best" in cells[1].title


def test_measurable_tar_skips_n_a_and_targets_below_one_over_n():
    metrics = [_m("tar_at_far_1e-4", None), _m("tar_at_far_1e-3", 0.7, n_impostor=3000),
               _m("tar_at_far_1e-2", 0.9, n_impostor=3000), _m("tar_at_far_1e-5", 0.5, n_impostor=3000)]
    assert E.measurable_tar_names(metrics, 2) == ["tar_at_far_1e-3", "tar_at_far_1e-2"]
    names = headline_names([_m("accuracy", 0.99), *metrics, _m("eer", 0.01), _m("auc", 0.99)])
    assert names[:2] == ["accuracy", "tar_at_far_1e-3"] and "tar_at_far_1e-4" not in names


def test_det_band_is_one_minus_the_roc_band_swapped():
    curves = {"roc_band": {"far": [1e-3, 1e-2], "tar_low": [0.5, 0.8], "tar_high": [0.7, 0.9]}}
    assert E.det_band(curves) == ([1e-3, 1e-2], [pytest.approx(0.3), pytest.approx(0.1)],
                                  [pytest.approx(0.5), pytest.approx(0.2)])
    assert E.roc_band({}) is None and E.det_band({"roc_band": {"far": [1], "tar_low": [1], "tar_high": [1]}}) is None


def test_band_is_drawn_under_the_curve_and_clamped_on_log_axes():
    svg = str(line_chart([Series("a", [1e-3, 1e-2, 1e-1], [0.1, 0.05, 0.0],
                                 band=([1e-3, 1e-2, 1e-1], [0.0, 0.0, 0.0], [0.2, 0.1, 0.05]))],
                         kind="det", title="DET", x_label="x", y_label="y", x_log=True, y_log=True,
                         x_lim=(1e-3, 1), y_lim=(1e-2, 1)))
    assert svg.index('class="band"') < svg.index('class="series"')
    d = svg.split('class="band"')[1].split('d="')[1].split('"')[0]
    assert d.startswith("M") and d.endswith("Z") and d.count("L") == 5  # 0 sits on the axis edge, not dropped


@pytest.mark.parametrize("key, label", [("wall_s", "Wall time (s)"), ("img_per_s", "Images/s"), ("iou", "IoU"),
                                        ("batch_size", "Batch size"), ("gallery_ms", "Gallery (ms)"),
                                        ("far_achieved", "FAR achieved"), ("faces_counted", "Faces counted")])
def test_field_labels_read_as_written_by_hand(key, label):
    assert F.field_label(key) == label


def test_mappings_read_as_text_not_json():
    assert F.fmt_value({"easy": 12, "hard": 30}) == "Easy 12 · Hard 30"
    assert F.fmt_value({"a": {"b": 1}}) == "A (B 1)"
    assert F.fmt_value({}) == "—"


def test_operating_point_labels_name_the_target():
    assert _op_label("far_1e-1") == "FAR target ≤ 1e-1"
    assert _op_label("eer") == "EER (FAR = FRR)"
    assert _op_label("custom") == "custom"


def test_one_fold_and_detection_protocol_names():
    one = {"protocol": {"dataset": "lfw", "pairs": 600, "name": "LFW View 2 (6,000 pairs, 10 folds)",
                        "cv_folds": "one fold split into 10 stratified sub-folds"},
           "provenance": {"config": {"eval_folds": [3]}}}
    box = {kv.key: kv.value for kv in protocol_box(one)}
    assert box["Evaluated on"].startswith("fold 3 only (0-based): 600 pairs")
    assert "this run used part of it" in box["Name"]
    full = {"protocol": {"name": "LFW View 2 (6,000 pairs, 10 folds)"}, "provenance": {"config": {}}}
    assert _protocol_name(full, full["protocol"]["name"]) == "LFW View 2 (6,000 pairs, 10 folds)"
    det = {"sections": {"detection": {"ap": {"easy": 0.9, "medium": 0.8, "hard": 0.6}}}}
    assert _protocol_name(det, "WIDER FACE val hard (40 images)") == "WIDER FACE val easy / medium / hard (40 images)"
    assert _protocol_name(det, "my set") == "my set (easy / medium / hard subsets)"


@pytest.mark.parametrize("config, expected", [
    ({"components": {"backbone": "r", "loss": "arcface"}, "train": ["synthetic"]}, "trained from scratch"),
    ({"components": {"backbone": "r", "loss": "arcface"}, "train": ["s"], "training": {"init": "a.ckpt"}},
     "initialised from a.ckpt"),
    ({"components": {"backbone": "r", "loss": "arcface"}, "train": ["s"], "options": {"r": {"weights": "casia"}}},
     ""),
    ({"components": {"backbone": "r"}, "train": []}, ""),
])
def test_from_scratch_statement(config, expected):
    text = _from_scratch({"config": config}, "backbone", "r")
    assert (expected in text) if expected else text == ""
    assert _from_scratch({"config": config}, "loss", "arcface") == ""


def test_published_section_pairs_figures_with_measured_metrics():
    results = {"sections": {"published": {"lfw_accuracy": 0.9938, "lfw_std": 0.0027, "threshold": 0.6}}}
    by_name = {"accuracy": _m("accuracy", 0.99, [0.985, 0.995])}
    s = E.published_section(results, by_name)
    row = [c.text for c in s.tables[0].rows[0]]
    assert row[:3] == ["Accuracy", "99.38% ± 0.27", "99.00%"]
    assert row[4] == "-0.38 pp" and row[5] == "yes"
    assert s.items == [] and s.tables[0].note.endswith("Published with: threshold 0.6.")
    only = E.published_section({"sections": {"published": {"threshold": 0.6}}}, by_name)
    assert [(kv.key, kv.value) for kv in only.items] == [("Threshold", "0.6")] and only.tables == []
    assert E.published_section({"sections": {}}, by_name) is None


def test_intervals_statement_reads_each_source():
    on = {"sections": {"intervals": {"level": 0.95, "method": "percentile", "unit": "pairs", "B": 1000, "seed": 0,
                                     "fixed_threshold": "exact binomial (clopper-pearson)"}}}
    assert E.intervals_text(on).startswith("95 % percentile bootstrap over pairs, B = 1,000, seed 0; error rates")
    assert E.intervals_text({"sections": {"intervals": {"B": 0, "note": "off"}}}) == "off"
    ident = {"sections": {"identification": {"intervals": {"level": 0.95, "unit": "subjects", "B": 50, "seed": 1}}}}
    assert "over subjects" in E.intervals_text(ident)
    assert E.intervals_text({}) == ""
