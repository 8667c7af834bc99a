"""``harness threshold`` and ``harness score --threshold``: a threshold chosen on
one run's scores, applied to another's, with binomial intervals checked
against scipy's ``binomtest(...).proportion_ci`` (exact and Wilson)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import binomtest

from harness.cli import main
from harness.cli.score import command as score_command
from harness.cli.threshold import command, rates_at
from harness.metrics.verification import Roc
from harness.results import RunStore


def _scores(seed, n_gen=2000, n_imp=20000, shift=0.0):
    r = np.random.default_rng(seed)
    y = np.r_[np.ones(n_gen, int), np.zeros(n_imp, int)]
    s = np.round(r.standard_normal(y.size) + 3.0 * y + shift * (1 - y), 4)  # rounded: ties occur
    return s, y


def _csv(path: Path, s, y) -> Path:
    path.write_text("score,label\n" + "".join(f"{a!r},{b}\n" for a, b in zip(s.tolist(), y.tolist())))
    return path


def _score_run(tmp_path, name, s, y) -> str:
    """A real run folder written by ``harness score``; returns its id."""
    res = CliRunner().invoke(score_command, [str(_csv(tmp_path / f"{name}.csv", s, y)), "--reports",
                                             str(tmp_path / "reports"), "--name", name, "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    return next(r.run_id for r in RunStore(tmp_path / "reports").runs() if name in r.run_id)


def _ref_ci(k, n, method):
    ci = binomtest(k, n).proportion_ci(0.95, method=method)
    return [ci.low, ci.high]


def _invoke(args):
    res = CliRunner().invoke(command, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_threshold_from_one_run_applied_to_another(tmp_path):
    s_dev, y_dev = _scores(0)
    s_test, y_test = _scores(1)
    dev, test = _score_run(tmp_path, "dev", s_dev, y_dev), _score_run(tmp_path, "test", s_test, y_test)
    out = json.loads(_invoke([dev, "--far", "1e-2", "--apply", test, "--reports", str(tmp_path / "reports"),
                              "--json"]))
    op = Roc(s_dev, y_dev).tar_at_far(1e-2)
    t = out["threshold"]
    assert t == op.threshold and out["tar"] == op.tar and out["far"] <= 1e-2 and out["resolvable"]
    applied = out["applied"][0]
    assert test in applied["name"]
    fa = int(np.count_nonzero(s_test[y_test == 0] >= t))
    fr = int(np.count_nonzero(s_test[y_test == 1] < t))
    assert (applied["far"]["errors"], applied["far"]["n"]) == (fa, 20000)
    assert (applied["frr"]["errors"], applied["frr"]["n"]) == (fr, 2000)
    assert applied["far"]["value"] == fa / 20000
    for rate, k, n in (("far", fa, 20000), ("frr", fr, 2000)):
        np.testing.assert_allclose(applied[rate]["clopper-pearson"], _ref_ci(k, n, "exact"), rtol=1e-9)
        np.testing.assert_allclose(applied[rate]["wilson"], _ref_ci(k, n, "wilson"), rtol=1e-9)
    # the same data drawn twice: the target lies inside the realised FAR's interval
    lo, hi = applied["far"]["clopper-pearson"]
    assert lo <= 1e-2 <= hi


def test_text_report_flags_a_threshold_that_does_not_transfer(tmp_path):
    dev = _score_run(tmp_path, "dev", *_scores(0))
    shifted = _score_run(tmp_path, "shifted", *_scores(2, shift=1.0))  # impostors score higher here
    out = _invoke([dev, "--far", "1e-2", "--apply", shifted, "--reports", str(tmp_path / "reports")])
    assert "threshold for FAR <= 0.01" in out
    assert "realised FAR" in out and "Clopper-Pearson" in out and "Wilson" in out
    assert "OUTSIDE the realised FAR's interval: the threshold does not transfer" in out
    assert "use it elsewhere: harness score FILE --threshold" in out


def test_unresolvable_target_and_rule_of_three(tmp_path):
    s, y = _scores(3, n_gen=300, n_imp=300)
    dev = _csv(tmp_path / "dev.csv", s, y)
    test_s = np.r_[np.full(50, 10.0), np.full(40, -10.0)]  # genuine far above, impostors far below
    test = _csv(tmp_path / "test.csv", test_s, np.r_[np.ones(50, int), np.zeros(40, int)])
    out = _invoke([str(dev), "--far", "1e-3", "--apply", str(test)])
    assert "300 impostor scores cannot resolve FAR 0.001 (it needs at least 1,000)" in out
    assert "no error seen: rule-of-3 upper bound 0.0749" in out  # -ln(0.05) / 40


def test_run_folder_arrays_and_key(tmp_path, capsys):
    """A run folder as the tasks write it (scores.npz with folds, fallbacks, several score arrays)."""
    s, y = _scores(4, n_gen=500, n_imp=500)
    store = RunStore(tmp_path / "reports")
    run = store.create("meshface-telea", "abc1234567")
    run.save_arrays("scores", label=y.astype(np.int8), fold=np.arange(y.size) % 10,
                    score_clean=s, score_restored=s - 0.5)
    out = json.loads(_invoke([str(run.path), "--far", "0.1", "--key", "score_restored", "--json"]))
    assert out["threshold"] == Roc(s - 0.5, y).tar_at_far(0.1).threshold
    assert "score_restored" in out["development"]["name"]
    capsys.readouterr()
    assert main(["threshold", str(run.path), "--far", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "has no 'score' array (it has fold, label, score_clean, score_restored); pick one with --key" in err


@pytest.mark.parametrize("args, fragment", [
    (["--far", "0"], "--far: 0.0 is outside (0, 1]"),
    (["--far", "0.1", "--level", "1.5"], "--level 1.5: expected a confidence level in (0, 1)"),
    (["--far", "0.1", "--apply", "nope-no-run"], "no run 'nope-no-run'"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, fragment):
    dev = _csv(tmp_path / "dev.csv", *_scores(5, n_gen=50, n_imp=50))
    assert main(["threshold", str(dev), "--reports", str(tmp_path / "reports"), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_score_with_a_fixed_threshold(tmp_path):
    s, y = _scores(6, n_gen=400, n_imp=4000)
    t = float(np.quantile(s[y == 0], 0.99))
    path = _csv(tmp_path / "sys.csv", s, y)
    res = CliRunner().invoke(score_command, [str(path), "--reports", str(tmp_path / "r"), "--bootstrap", "0",
                                             "--threshold", repr(t), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    by = {m["name"]: m for m in data["metrics"]}
    fa = int(np.count_nonzero(s[y == 0] >= t))
    fr = int(np.count_nonzero(s[y == 1] < t))
    assert by["far_at_threshold"]["value"] == fa / 4000 and by["frr_at_threshold"]["value"] == fr / 400
    np.testing.assert_allclose(by["far_at_threshold"]["ci"], _ref_ci(fa, 4000, "exact"), rtol=1e-9)
    np.testing.assert_allclose(by["frr_at_threshold"]["meta"]["wilson"], _ref_ci(fr, 400, "wilson"), rtol=1e-9)
    assert by["far_at_threshold"]["meta"]["threshold"] == t
    assert by["far_at_threshold"]["meta"]["ci"]["method"] == "clopper-pearson"
    text = CliRunner().invoke(score_command, [str(path), "--reports", str(tmp_path / "r2"), "--bootstrap", "0",
                                              "--threshold", repr(t)]).output
    assert "far_at_threshold" in text and "clopper-pearson" in text


def test_rates_at_counts_ties_as_accepted():
    s = np.array([0.5, 0.5, 0.4, 0.5, 0.7])
    y = np.array([1, 0, 1, 0, 0])
    r = rates_at(s, y, 0.5)
    assert (r["far"]["errors"], r["far"]["n"], r["frr"]["errors"], r["frr"]["n"]) == (3, 3, 1, 2)
    assert r["far"]["clopper-pearson"] == [pytest.approx(_ref_ci(3, 3, "exact")[0]), 1.0]
