"""``harness report`` and ``harness runs``."""

from __future__ import annotations

import json

from harness.cli import main
from harness.results import RunStore


def test_report_rebuilds_pages(tmp_path, make, capsys):
    store = RunStore(tmp_path)
    runs = make.write_grid(store, "g1")
    assert main(["report", "--reports", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rendered 4 run page(s), 1 grid page(s)" in out
    assert f"index: {(tmp_path / 'index.html').resolve().as_uri()}" in out
    for run in runs:
        assert run.page_path.exists()
    # one run by id prefix; the page is rewritten even though it is up to date
    before = runs[0].page_path.stat().st_mtime_ns
    assert main(["report", runs[0].run_id, "--reports", str(tmp_path)]) == 0
    assert "rendered 1 run page(s)" in capsys.readouterr().out
    assert runs[0].page_path.stat().st_mtime_ns >= before


def test_report_open_uses_webbrowser(tmp_path, make, monkeypatch, capsys):
    make.write_liveness_run(RunStore(tmp_path))
    opened = []
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert main(["report", "--reports", str(tmp_path), "--open"]) == 0
    assert opened == [(tmp_path / "index.html").resolve().as_uri()]


def test_report_errors_are_clear(tmp_path, capsys):
    assert main(["report", "--reports", str(tmp_path / "none")]) == 2
    assert "holds no runs" in capsys.readouterr().err
    RunStore(tmp_path).create("x", "h")
    assert main(["report", "nope", "--reports", str(tmp_path)]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_runs_lists_and_prints_json(tmp_path, make, capsys):
    store = RunStore(tmp_path)
    det = make.write_detection_run(store)
    ver = make.write_verification_run(store, seed=3, n_pairs=600, name="mine")
    pending = store.create("pending", "p1")
    assert main(["runs", "--reports", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [pending.run_id, ver.run_id, det.run_id]
    assert "AP easy 91.20%" in lines[2] and "running" in lines[0]
    assert main(["runs", "--reports", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["run_id"] for d in data] == [pending.run_id, ver.run_id, det.run_id]
    assert data[1]["name"] == "mine" and data[1]["components"]["backbone"] == "resnet20"
    assert data[2]["metrics"]["ap_hard"] == 0.611 and data[0]["status"] == "running"
    assert main(["runs", "--reports", str(tmp_path / "empty")]) == 0
    assert "no runs" in capsys.readouterr().out
