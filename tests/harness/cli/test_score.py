"""``harness score FILE`` end to end: CSV / NPZ in, a run in the results store out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.cli.score import command, read_scores
from harness.errors import DataError
from harness.metrics.lfw import kfold_accuracy_from_scores


def _write_csv(path: Path, with_attack=False, seed=0):
    r = np.random.default_rng(seed)
    y = np.tile(np.r_[np.ones(20), np.zeros(20)], 10).astype(int)
    s = r.standard_normal(y.size) + 2 * y
    f = np.repeat(np.arange(10), 40)
    head = "score,label,fold" + (",attack_type" if with_attack else "")
    rows = [head]
    for i, (a, b, c) in enumerate(zip(s, y, f)):
        row = f"{float(a)!r},{b},{c}"
        if with_attack:
            row += "," + ("" if b else ("print" if i % 2 else "replay"))
        rows.append(row)
    path.write_text("\n".join(rows) + "\n")
    return s, y, f


def test_score_csv_writes_a_run(tmp_path):
    s, y, f = _write_csv(tmp_path / "sys.csv")
    reports = tmp_path / "reports"
    res = CliRunner().invoke(command, [str(tmp_path / "sys.csv"), "--reports", str(reports), "--name", "My Sys"])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "tar_at_far_1e-3" in res.output
    runs = list((reports / "runs").iterdir())
    assert len(runs) == 1 and "scores-my-sys" in runs[0].name
    data = json.loads((runs[0] / "results.json").read_text())
    assert data["task"] == "scores" and data["status"] == "finished"
    acc = [m for m in data["metrics"] if m["name"] == "accuracy"][0]
    assert acc["value"] == pytest.approx(kfold_accuracy_from_scores(s, y, f).mean)
    with np.load(runs[0] / "scores.npz") as z:
        np.testing.assert_array_equal(z["score"], s)
        np.testing.assert_array_equal(z["fold"], f)


def test_score_npz_json_and_liveness(tmp_path):
    s, y, f = _write_csv(tmp_path / "live.csv", with_attack=True)
    res = CliRunner().invoke(command, [str(tmp_path / "live.csv"), "--reports", str(tmp_path / "r"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    names = {m["name"] for m in data["metrics"]}
    assert {"apcer", "bpcer", "acer", "hter", "eer"} <= names
    assert set(data["sections"]["liveness"]["apcer_per_species"]) == {"print", "replay"}
    np.savez(tmp_path / "s.npz", score=s, label=y)
    res = CliRunner().invoke(command, [str(tmp_path / "s.npz"), "--reports", str(tmp_path / "r"),
                                       "--rule", "nearest", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert "lfw" not in data["sections"] and data["protocol"]["tar_at_far_rule"] == "nearest"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", ":1: the file is empty"),
        ("score,fold\n0.1,0\n", ":1: no 'label' column"),
        ("score,label\n0.1,1\nabc,0\n", ":3: column 'score': 'abc' is not a number"),
        ("score,label\n0.1,1\n0.2,2\n", ":3: column 'label': '2'; labels must be 0 or 1"),
        ("score,label\n0.1,1\nnan,0\n", ":3: column 'score': 'nan' is not finite"),
        ("score,label,fold\n0.1,1,0.5\n", ":2: column 'fold': '0.5'"),
        ("score,label\n0.1\n", ":2: 1 field(s) but the header has 2"),
    ],
)
def test_bad_csv_names_file_line_and_column(tmp_path, text, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError) as exc:
        read_scores(p)
    assert str(p) in str(exc.value) and fragment in str(exc.value)


def test_bad_input_through_main_is_one_message(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("score,label\n0.1,1\n0.2,1\n")
    rc = main(["score", str(p), "--reports", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc != 0 and "no impostor (label 0)" in err and "Traceback" not in err
    np.savez(tmp_path / "x.npz", score=np.array([0.1, np.inf]), label=np.array([0, 1]))
    rc = main(["score", str(tmp_path / "x.npz"), "--reports", str(tmp_path / "r")])
    assert rc != 0 and "array 'score' entry 1 is inf" in capsys.readouterr().err
    rc = main(["score", str(tmp_path / "missing.csv")])
    assert rc != 0 and "no such file" in capsys.readouterr().err
