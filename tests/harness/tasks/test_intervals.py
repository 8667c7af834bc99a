"""``intervals:`` in the run config and the tasks' interval calls (harness/tasks/_intervals.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from harness.config import IntervalSettings, RunConfig
from harness.errors import ConfigError
from harness.metrics.report import verification_summary
from harness.tasks import _intervals


def _spec(**kw):
    return SimpleNamespace(intervals=IntervalSettings(**kw), seed=7)


def _pairs(n=400, seed=0):
    r = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 0
    a = r.integers(0, 50, n)
    b = np.where(y, a, (a + 1 + r.integers(0, 49, n)) % 50)
    s = np.where(y, r.normal(1, 1, n), r.normal(-1, 1, n))
    return s, y.astype(np.int64), np.arange(n) % 10, a, b


def test_intervals_key_is_validated_and_kept_out_of_the_hash_at_its_defaults():
    cfg = RunConfig.from_mapping({"recognizer": "x", "eval": "lfw", "intervals": {"bootstrap": 200, "unit": "pairs"}})
    assert cfg.intervals == IntervalSettings(bootstrap=200, unit="pairs")
    assert cfg.to_mapping()["intervals"]["bootstrap"] == 200
    assert "intervals" not in RunConfig.from_mapping({"recognizer": "x"}).to_mapping()
    assert cfg.merged({"intervals": {"bootstrap": 0}}).intervals.bootstrap == 0
    with pytest.raises(ConfigError, match="unknown intervals setting 'B'"):
        RunConfig.from_mapping({"intervals": {"B": 10}})
    with pytest.raises(ConfigError, match="intervals.bootstrap=-1"):
        IntervalSettings(bootstrap=-1)
    with pytest.raises(ConfigError, match="intervals.level=1"):
        IntervalSettings(level=1.0)
    with pytest.raises(ConfigError, match="intervals.method"):
        IntervalSettings(method="normal")
    assert IntervalSettings(seed=5).kwargs(0)["seed"] == 5 and IntervalSettings().kwargs(3)["seed"] == 3


def test_spec_hash_changes_only_when_intervals_do(tmp_path):
    from harness.config import DataRef, RunSpec, TrainSettings

    base = dict(task="recognition", components={"recognizer": "x"}, train=(), eval=(DataRef("lfw"),), options={},
                training=TrainSettings(), seed=0)
    plain = RunSpec(**base)
    assert "intervals" not in plain.to_dict()
    assert RunSpec(**base, intervals=IntervalSettings(bootstrap=1000)).config_hash() == plain.config_hash()
    assert RunSpec(**base, intervals=IntervalSettings(bootstrap=10)).config_hash() != plain.config_hash()


@pytest.mark.parametrize("unit, known, expected", [
    ("auto", True, "subjects"), ("auto", False, "pairs"), ("pairs", True, "pairs"), ("subjects", False, "pairs"),
])
def test_verification_unit_follows_the_identities(unit, known, expected):
    s, y, f, a, b = _pairs()
    if not known:
        a = np.where(np.arange(a.size) == 3, -1, a)  # one image of unknown identity
    summary = verification_summary(s, y, f)
    _intervals.verification(_spec(bootstrap=60, unit=unit), summary, s, y, f, a, b)
    st = summary["sections"]["intervals"]
    assert st["unit"] == expected and st["B"] == 60 and st["seed"] == 7
    cis = {m["name"]: m["meta"]["ci"] for m in summary["metrics"] if m.get("ci")}
    assert {"accuracy", "eer", "auc", "far_at_eer_threshold", "tar_at_far_1e-1"} <= set(cis)
    assert cis["accuracy"]["unit"] == expected
    far_unit = cis["far_at_eer_threshold"]["unit"]
    assert far_unit == ("trials" if expected == "pairs" else "subjects")
    band = summary["curves"]["roc_band"]
    assert band["far"][0] == pytest.approx(1 / 200) and len(band["tar_low"]) == len(band["far"])


def test_intervals_off_leaves_every_ci_empty_and_says_so():
    s, y, f, a, b = _pairs()
    summary = verification_summary(s, y, f)
    _intervals.verification(_spec(bootstrap=0), summary, s, y, f, a, b)
    assert all(m["ci"] is None for m in summary["metrics"])
    assert summary["sections"]["intervals"]["B"] == 0 and "roc_band" not in summary["curves"]


def test_liveness_and_detection_statements():
    from harness.metrics.report import liveness_summary

    r = np.random.default_rng(1)
    y = np.r_[np.ones(80, bool), np.zeros(120, bool)]
    sp = np.r_[[""] * 80, r.choice(["print", "replay"], 120)]
    s = np.r_[r.normal(1, 1, 80), r.normal(-1, 1, 120)]
    summary = liveness_summary(s, y, sp)
    _intervals.liveness(_spec(bootstrap=50, binomial="wilson"), summary, s, y, sp)
    by = {m["name"]: m for m in summary["metrics"]}
    assert by["bpcer"]["meta"]["ci"]["method"] == "wilson" and by["acer"]["meta"]["ci"]["unit"] == "presentations"
    assert summary["sections"]["intervals"]["unit"] == "presentations"
    assert _intervals.detection(_spec(bootstrap=0), [], {}, {}, {}) == {"B": 0, "note": "off (intervals.bootstrap: 0)"}


def test_data_an_interval_cannot_use_does_not_fail_the_run():
    s, y, f, a, b = _pairs()
    summary = verification_summary(s, y, f)
    _intervals.verification(_spec(bootstrap=20, method="bca"), summary, np.r_[s[:-1], np.nan], y, f, a, b)
    assert summary["sections"]["intervals"]["note"].startswith("not computed: ")
    assert all(m["ci"] is None for m in summary["metrics"])
