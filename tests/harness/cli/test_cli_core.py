"""The core commands: list, plugins, doctor, run --dry-run, error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli import main


def run_cli(args, capsys):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_json_has_every_kind(capsys):
    code, out, _ = run_cli(["list", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["backbone", "loss", "recognizer", "detector", "liveness", "inpainter", "dataset", "engine"]
    for kind, items in data.items():
        for item in items:
            assert item["kind"] == kind and item["name"] and "available" in item and item["plugin"]


def test_list_one_kind_accepts_plural_and_rejects_unknown(capsys):
    assert run_cli(["list", "backbones", "--json"], capsys)[0] == 0
    code, _, err = run_cli(["list", "backbonez"], capsys)
    assert code == 2 and "did you mean 'backbone'" in err


def test_run_unknown_backbone_exits_nonzero_with_suggestions(capsys):
    code, _, err = run_cli(["run", "--backbone", "nope", "--dry-run"], capsys)
    assert code == 2
    assert "unknown backbone 'nope'" in err and "Available backbones:" in err


def test_unknown_command_suggests(capsys):
    code, _, err = run_cli(["lsit"], capsys)
    assert code == 2 and "did you mean 'list'" in err


def test_bad_option_is_one_message_and_debug_shows_traceback(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("backbonez: x\n")
    code, _, err = run_cli(["run", "--config", str(cfg), "--dry-run"], capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    code, _, err = run_cli(["--debug", "run", "--config", str(cfg), "--dry-run"], capsys)
    assert code == 2 and "Traceback" in err


def test_dry_run_json_expands_the_grid_from_yaml_and_flags(capsys, tmp_path, fresh_registry):
    backbones = fresh_registry.names("backbone")
    losses = fresh_registry.names("loss")
    if len(backbones) < 2 or len(losses) < 1:
        pytest.skip("needs two registered backbones and a loss")
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(f"backbone: [{backbones[0]}, {backbones[1]}]\nloss: {losses[0]}\nseed: 7\n")
    code, out, err = run_cli(["run", "--config", str(cfg), "--seed", "9", "--dry-run", "--json"], capsys)
    assert code == 0, err
    grid = json.loads(out)
    assert [g["components"]["backbone"] for g in grid] == backbones[:2]
    assert all(g["seed"] == 9 for g in grid)  # the flag wins over the YAML


def test_plugins_json_lists_builtins(capsys):
    code, out, _ = run_cli(["plugins", "--json"], capsys)
    data = json.loads(out)
    builtin = {p["name"] for p in data["plugins"] if p["builtin"]}
    assert {"backbones", "losses", "detectors", "datasets", "engines"} <= builtin
    assert code == 0


def test_doctor_json_reports_frameworks_and_data(capsys):
    code, out, _ = run_cli(["doctor", "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["python"].startswith("3.")
    assert set(data["frameworks"]) >= {"torch", "tensorflow", "dlib", "onnxruntime", "opencv"}
    assert "engine" in data["docker"] and "available" in data["cuda"]
    assert data["data"]["setting"].startswith("FACEBENCH_DATA")


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "harness", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "facebench" in out.stdout


def test_train_detector_refuses_untrainable_and_bad_data(capsys, tmp_path):
    code, _, err = run_cli(["train-detector", "yunet", "--data", "wider=x", "-o", str(tmp_path / "w.pt")], capsys)
    assert code == 2 and "not trainable" in err
    code, _, err = run_cli(["train-detector", "cascade_cnn", "--data", "widerx", "-o", str(tmp_path / "w.pt")], capsys)
    assert code == 2 and "not KEY=PATH" in err
    code, _, err = run_cli(["train-detector", "cascade_cnn", "--data", f"wider={tmp_path / 'nope'}",
                            "-o", str(tmp_path / "w.pt")], capsys)
    assert code == 2 and "does not exist" in err
