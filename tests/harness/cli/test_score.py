"""``harness score FILE`` end to end: CSV / NPZ in, a run in the results store out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

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


def _good_csv(tmp_path: Path) -> Path:
    p = tmp_path / "ok.csv"
    _write_csv(p)
    return p


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("score,label\n0.9,1\n0.1,0\n0.2,0,caf\xe9\n".encode("latin-1"), ":4: byte 0xe9 at column 10 is not UTF-8"),
        ("sc\xf6re,label\n0.9,1\n".encode("latin-1"), ":1: byte 0xf6 at column 3 is not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "is not UTF-8"),
        (b"score,label\n0.9,1\n\x00\x01\x02\x03", ":3: contains NUL bytes: this is a binary file"),
        (b"score,label\n" + b"\x00" * 64, "binary file, not a CSV"),
    ],
    ids=["latin1-row", "latin1-header", "png", "nul-row", "zeros"],
)
def test_non_utf8_or_binary_csv_is_one_clear_line(tmp_path, capsys, raw, fragment):
    p = tmp_path / "scores.csv"
    p.write_bytes(raw)
    reports = tmp_path / "reports"
    rc = main(["score", str(p), "--reports", str(reports)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert fragment in err and str(p) in err
    assert "unexpected" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (reports / "runs").exists() or not any((reports / "runs").iterdir())


def test_csv_with_a_utf8_bom_and_cr_line_ends_still_reads(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbfscore,label\r0.9,1\r0.1,0\r")
    data = read_scores(p)
    np.testing.assert_array_equal(data["score"], [0.9, 0.1])
    np.testing.assert_array_equal(data["label"], [1, 0])


def test_csv_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('score,label\n0.9,1\n"0.1' + "x" * 200_000 + '",0\n')
    with pytest.raises(DataError, match=r"q\.csv:\d+: not a readable CSV"):
        read_scores(p)


def _no_run_left(reports: Path) -> bool:
    runs = reports / "runs"
    return not runs.is_dir() or not any(runs.iterdir())


@pytest.mark.parametrize("where", ["reports-is-a-file", "under-a-file", "runs-is-a-file"])
def test_reports_that_cannot_hold_runs_is_one_line_and_writes_nothing(tmp_path, capsys, where):
    csv_path = _good_csv(tmp_path)
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder\n")
    if where == "reports-is-a-file":
        reports, culprit = blocker, blocker
    elif where == "under-a-file":
        reports, culprit = blocker / "sub", blocker
    else:
        reports = tmp_path / "rep"
        reports.mkdir()
        culprit = reports / "runs"
        culprit.write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    rc = main(["score", str(csv_path), "--reports", str(reports)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"{culprit} is a file, not a folder" in err and "--reports" in err
    assert "unexpected" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, no index.html
    assert blocker.read_text() == "not a folder\n"


def test_read_only_reports_folder_is_one_line(tmp_path, capsys):
    import os

    csv_path = _good_csv(tmp_path)
    reports = tmp_path / "ro"
    reports.mkdir()
    reports.chmod(0o500)
    try:
        probe = reports / "probe"
        try:
            probe.mkdir()
        except PermissionError:
            pass
        else:  # root ignores folder permissions: nothing to test here
            probe.rmdir()
            pytest.skip(f"uid {os.getuid()} can write to a 0o500 folder (root bypasses permissions)")
        rc = main(["score", str(csv_path), "--reports", str(reports)])
        err = capsys.readouterr().err
        assert rc == 2 and f"{reports} is not writable" in err and "unexpected" not in err
        assert list(reports.iterdir()) == []
    finally:
        reports.chmod(0o700)


def test_check_writable_accepts_a_folder_not_made_yet(tmp_path):
    from harness.results import RunStore

    store = RunStore(tmp_path / "a" / "b")
    store.check_writable()
    assert not (tmp_path / "a").exists()
    run = store.create("x", "abc123")
    assert run.path.parent == tmp_path / "a" / "b" / "runs"


# -- confidence intervals -----------------------------------------------------
def _write_subject_csv(path: Path, header="score,label,fold,subject_a,subject_b", n=400, seed=0):
    r = np.random.default_rng(seed)
    y = (np.arange(n) % 2 == 0).astype(int)
    a = r.integers(0, 60, n)
    b = np.where(y == 1, a, (a + r.integers(1, 60, n)) % 60)
    s = r.standard_normal(n) + 2 * y
    f = np.repeat(np.arange(10), n // 10)
    rows = [header]
    for si, yi, fi, ai, bi in zip(s, y, f, a, b):
        cells = {"score": repr(float(si)), "label": str(yi), "fold": str(fi), "subject": f"p{ai}",
                 "subject_a": f"p{ai}", "subject_b": f"p{bi}"}
        rows.append(",".join(cells[c] for c in header.split(",")))
    path.write_text("\n".join(rows) + "\n")
    return s, y, f, a, b


def _results(reports: Path) -> dict:
    (run,) = list((reports / "runs").iterdir())
    return json.loads((run / "results.json").read_text())


def test_score_prints_an_interval_per_headline_metric_over_subjects(tmp_path):
    csv_path = tmp_path / "subj.csv"
    _write_subject_csv(csv_path)
    reports = tmp_path / "r"
    res = CliRunner().invoke(command, [str(csv_path), "--reports", str(reports), "--bootstrap", "300",
                                       "--seed", "4"])
    assert res.exit_code == 0, res.output
    assert "intervals: 95% percentile bootstrap over subjects" in res.output and "B=300, seed 4" in res.output
    lines = {ln.split()[0]: ln for ln in res.output.splitlines() if ln and not ln.startswith(("subj", "int", "wr"))}
    for name in ("accuracy", "eer", "auc", "tar_at_far_1e-1", "far_at_eer_threshold", "frr_at_eer_threshold"):
        assert "95% percentile, subjects" in lines[name], lines[name]
    assert "[" not in lines["tar_at_far_1e-6"]  # undefined: no interval
    data = _results(reports)
    assert data["protocol"]["intervals"] == {"level": 0.95, "method": "percentile", "unit": "subjects",
                                             "B": 300, "seed": 4,
                                             "unit_reason": "the file names the people of every pair"}
    acc = next(m for m in data["metrics"] if m["name"] == "accuracy")
    assert set(acc["meta"]["ci"]) >= {"low", "high", "level", "method", "unit", "B", "seed"}
    assert acc["ci"] == [acc["meta"]["ci"]["low"], acc["meta"]["ci"]["high"]]
    assert acc["ci"][0] <= acc["value"] <= acc["ci"][1]
    with np.load(next((reports / "runs").iterdir()) / "scores.npz") as z:
        assert z["subject_a"][0].startswith("p") and z["subject_b"].size == 400


def test_score_intervals_are_seeded(tmp_path):
    csv_path = tmp_path / "subj.csv"
    _write_subject_csv(csv_path)

    def eer_ci(seed, where):
        res = CliRunner().invoke(command, [str(csv_path), "--reports", str(tmp_path / where), "--bootstrap", "200",
                                           "--seed", str(seed), "--json"])
        assert res.exit_code == 0, res.output
        return next(m for m in json.loads(res.output)["metrics"] if m["name"] == "eer")["ci"]

    assert eer_ci(1, "a") == eer_ci(1, "b") != eer_ci(2, "c")


def test_score_pairs_unit_uses_exact_binomial_at_the_threshold(tmp_path):
    csv_path = tmp_path / "subj.csv"
    s, y, *_ = _write_subject_csv(csv_path)
    reports = tmp_path / "r"
    res = CliRunner().invoke(command, [str(csv_path), "--reports", str(reports), "--ci-unit", "pairs",
                                       "--ci-method", "bca", "--bootstrap", "200"])
    assert res.exit_code == 0, res.output
    assert "bootstrap over pairs" in res.output and "exact binomial (Clopper-Pearson)" in res.output
    data = _results(reports)
    by = {m["name"]: m for m in data["metrics"]}
    assert by["eer"]["meta"]["ci"]["method"] == "bca" and by["eer"]["meta"]["ci"]["unit"] == "pairs"
    far = by["far_at_eer_threshold"]
    t = far["meta"]["threshold"]
    ref = stats.binomtest(int(np.sum(s[y == 0] >= t)), int(np.sum(y == 0))).proportion_ci(0.95, method="exact")
    assert far["ci"] == pytest.approx([ref.low, ref.high])
    assert far["meta"]["ci"]["method"] == "clopper-pearson"


def test_score_single_subject_column_and_npz_subjects(tmp_path):
    csv_path = tmp_path / "one.csv"
    _write_subject_csv(csv_path, header="score,label,subject")
    res = CliRunner().invoke(command, [str(csv_path), "--reports", str(tmp_path / "r"), "--bootstrap", "100"])
    assert res.exit_code == 0 and "bootstrap over subjects" in res.output, res.output
    s, y, f, a, b = _write_subject_csv(tmp_path / "x.csv")
    np.savez(tmp_path / "s.npz", score=s, label=y, subject_a=a.astype(str), subject_b=b.astype(str))
    res = CliRunner().invoke(command, [str(tmp_path / "s.npz"), "--reports", str(tmp_path / "r2"),
                                       "--bootstrap", "100", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["protocol"]["intervals"]["unit"] == "subjects"


def test_score_bootstrap_zero_gives_no_intervals(tmp_path):
    res = CliRunner().invoke(command, [str(_good_csv(tmp_path)), "--reports", str(tmp_path / "r"), "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "intervals: none" in res.output
    assert all(m["ci"] is None for m in _results(tmp_path / "r")["metrics"])


@pytest.mark.parametrize(
    "header, args, fragment",
    [
        ("score,label,fold", ["--ci-unit", "subjects"], "--ci-unit subjects needs a 'subject' column"),
        ("score,label,subject_a", [], "has 'subject_a' but no 'subject_b'"),
        ("score,label,subject,subject_a,subject_b", [], "has 'subject' and 'subject_a','subject_b'"),
    ],
)
def test_score_subject_problems_are_one_line_and_write_nothing(tmp_path, capsys, header, args, fragment):
    csv_path = tmp_path / "bad.csv"
    _write_subject_csv(csv_path, header=header, n=40)
    reports = tmp_path / "r"
    rc = main(["score", str(csv_path), "--reports", str(reports), *args])
    err = capsys.readouterr().err
    assert rc == 2 and fragment in err and str(csv_path) in err, err
    assert len(err.strip().splitlines()) == 1 and _no_run_left(reports)


def test_score_empty_subject_names_the_line(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("score,label,subject\n0.9,1,alice\n0.1,0,\n")
    with pytest.raises(DataError, match=r"e\.csv:3: column 'subject' is empty"):
        read_scores(p)
