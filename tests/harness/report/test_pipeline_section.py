"""The run page's "Evaluation pipeline" card, from ``sections.pipeline`` alone."""

from __future__ import annotations

from harness.report._pipeline_section import pipeline_section


def _section(**over):
    p = {"workers": 2, "embed_on": "workers", "images": 807, "detected": 800, "from_store": 7,
         "seconds": {"decode": 5.0, "detect": 40.0, "align": 2.0, "embed": 120.0, "score": 0.5, "setup": 0.0},
         "wall_s": 80.0, "img_per_s": 10.09, "rule": "stage seconds are summed over the processes"}
    p.update(over)
    return pipeline_section({"sections": {"pipeline": p}})


def test_absent_or_empty_shows_nothing():
    assert pipeline_section({}) is None
    assert pipeline_section({"sections": {"pipeline": {}}}) is None
    assert pipeline_section({"sections": {"pipeline": "junk"}}) is None


def test_stages_with_their_share_of_the_wall_time():
    s = _section()
    items = {kv.key: kv.value for kv in s.items}
    assert items["Decode → detect → align"] == "2 worker processes (one thread each)"
    assert items["Throughput"] == "10.09 img/s" and items["Wall time"] == "80.00 s"
    assert items["Detections"] == "800 new, 7 from the cache"
    (table,) = s.tables
    rows = {r[0].text: (r[1].text, r[2].text) for r in table.rows}
    assert list(rows) == ["decode", "detect", "align", "embed", "score"]  # no setup row when it took 0 s
    assert rows["embed"] == ("120.00 s", "150 %")  # summed over two workers: more than the wall time
    assert table.note.startswith("stage seconds")


def test_in_process_ranks_and_reasons_are_stated():
    s = _section(workers=0, embed_on="main", ranks=2, why_in_process="the image loader cannot be sent",
                 seconds={"decode": 1.0, "setup": 2.5}, wall_s=0)
    items = {kv.key: kv.value for kv in s.items}
    assert items["Decode → detect → align"] == "in the run's own process"
    assert items["Embedding"].startswith("on the main process")
    assert items["Ranks"].startswith("2 (torchrun")
    assert items["Why in-process"] == "the image loader cannot be sent"
    rows = {r[0].text: r[2].text for r in s.tables[0].rows}
    assert rows == {"decode": "n/a", "setup (building models in workers)": "n/a"}  # no wall time: no share
