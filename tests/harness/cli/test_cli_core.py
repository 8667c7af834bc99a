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
    assert list(data) == ["backbone", "loss", "recognizer", "detector", "landmarker", "liveness", "inpainter",
                          "dataset", "engine"]
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


def _dry_run_json(capsys, *args):
    code, out, err = run_cli(["run", *args, "--dry-run", "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_given_epochs_win_over_the_default_run_and_the_budget_switches_off(capsys):
    (run,) = _dry_run_json(capsys, "--epochs", "1")
    assert run["training"]["epochs"] == 1 and run["training"]["time_budget"] is None
    (run,) = _dry_run_json(capsys, "--time-budget", "0")
    assert run["training"]["time_budget"] is None


def test_a_flag_and_yaml_option_are_one_run(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("backbone: resnet20\noptions: {resnet20: {dropout: 0.1}}\n")
    (from_yaml,) = _dry_run_json(capsys, "--config", str(cfg))
    (from_flag,) = _dry_run_json(capsys, "--backbone", "resnet20", "-o", "resnet20.dropout=0.1")
    assert from_yaml["options"] == from_flag["options"] == {"resnet20": {"dropout": 0.1}}
    assert from_yaml["config_hash"] == from_flag["config_hash"]


@pytest.mark.parametrize("content", [
    b"seed: abc\n", b"backbone: 5\n", b"options: {resnet20: 5}\n", b"eval_folds: zero\n",
    b"training: {epochs: three}\n", bytes(range(256)), b"seed: 1\n# caf\xe9\n",
], ids=["seed", "backbone", "options", "eval_folds", "training", "binary", "latin-1"])
def test_bad_config_files_are_one_error_line(capsys, tmp_path, content):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    code, out, err = run_cli(["run", "--config", str(cfg), "--dry-run"], capsys)
    assert code == 2 and err.startswith(f"error: {cfg}") and err.count("\n") == 1, err
    assert "unexpected" not in err and not out


@pytest.mark.parametrize("args, expected", [
    (["run", "--backbone", "resnet20", "-o", "resnet20.embedding_size=99999999999999999999999"],
     "resnet20.embedding_size="),
    (["run", "--backbone", "resnet20", "-o", "resnet20.embedding_size=70000"], "expected an integer in [1, "),
    (["run", "--backbone", "resnet20", "-o", "resnet20.input_size=100000,100000"], "at most 1024 pixels"),
    (["run", "--backbone", "resnet20", "-o", "resnet20.dropout=" + "9" * 100_000], "characters)"),
    (["run", "--backbone", "resnet20", "-o", "resnet20." + "k" * 100_000 + "=1"], "characters)"),
    (["run", "--loss", "arcface", "-o", "arcface.s=1e300"], "arcface.s=1e+300: expected a number > 0"),
    (["run", "-o", "synthetic.train_identities=1000000000"], "synthetic.train_identities=1000000000"),
])
def test_out_of_bounds_options_fail_before_the_run_with_a_short_message(capsys, tmp_path, args, expected):
    code, _, err = run_cli([*args, "--reports", str(tmp_path), "--dry-run"], capsys)
    assert code == 2 and err.startswith("error: ") and expected in err, err[:300]
    assert len(err) < 400


def test_check_model_refuses_a_huge_input_before_building(capsys, tmp_path):
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["check-model", str(ckpt), "--backbone", "resnet20",
                            "-o", "resnet20.input_size=100000,100000"], capsys)
    assert code == 2 and "sides must be at most 1024 pixels" in err
