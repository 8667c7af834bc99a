"""The run page's *Tracking* section, from results.json alone (harness/report/_tracking.py)."""

from __future__ import annotations

import base64

from harness.report._tracking import MAX_INLINE, tracking_section


def _results(strip):
    rows = [{"mode": "tracking", "fps": 80.0, "ms_per_frame": 12.5, "jitter_common": 4.4, "jitter_mean": 4.4,
             "jitter_median": 2.9, "with_shape": 1.0, "breaks": 0, "detector_calls": 38, "redetections": 20,
             "apart_median": 11.24, "apart_over_50": 0.2},
            {"mode": "detect_every_frame", "fps": 20.0, "ms_per_frame": 50.0, "jitter_common": 3.7,
             "jitter_mean": 3.7, "jitter_median": 2.8, "with_shape": 1.0, "breaks": 0, "detector_calls": 275,
             "redetections": 0}]
    return {"sections": {"tracking": {"rows": rows, "strip": strip, "detector": "yunet", "frames": 275,
                                      "normaliser": "inter_ocular", "annotated": False}},
            "curves": {"jitter": {"tracking": {"x": [0, 1, 2], "y": [None, 3.0, 4.0]},
                                  "detect_every_frame": {"x": [0, 1, 2], "y": [None, 2.0, 5.0]}}}}


def test_table_plot_and_only_real_base64_images():
    good = base64.b64encode(b"\xff\xd8\xff\xe0 jpeg bytes").decode()
    strip = [{"frame": 0, "jpeg": good}, {"frame": 5, "jpeg": 'x" onerror="alert(1)'},
             {"frame": 9, "jpeg": "A" * (MAX_INLINE + 4)}, {"frame": 12}, "junk"]
    s = tracking_section(_results(strip))
    assert s.id == "tracking" and s.tables[0].id == "tracking-table"
    assert [c.text for c in s.tables[0].rows[0][:3]] == ["tracking", "80.0", "12.5"]
    assert s.tables[0].rows[1][0].text == "detect every frame"
    assert "median 11.2 %" in s.tables[0].note and "20%" in s.tables[0].note
    assert len(s.plots) == 1 and 'data-plot="jitter"' in str(s.plots[0])
    (only,) = s.strips[0].images
    assert only.href == f"data:image/jpeg;base64,{good}" and only.label == "frame 0"
    assert any("no annotations" in n for n in s.notes)


def test_no_section_for_other_runs_and_annotated_runs_get_nme():
    assert tracking_section({"sections": {"landmarks": {}}}) is None
    r = _results([])
    r["sections"]["tracking"]["annotated"] = True
    r["sections"]["tracking"]["rows"][0]["nme"] = 0.0512
    s = tracking_section(r)
    assert s.tables[0].columns[-1].label == "NME (inter-ocular)" and s.tables[0].rows[0][-1].text == "0.0512"
    assert s.strips == [] and not s.notes
