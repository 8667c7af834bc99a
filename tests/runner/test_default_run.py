"""The no-argument default run is reproducible: a fixed, seeded schedule
(no time budget unless the user gives one) on the synthetic data as its
generator renders it by default (more training identities, the same test
identities).  Its accuracy and wall time were measured
by hand (see ``DEFAULT_RUN_TRAINING`` in ``harness/config.py``); here the
schedule itself is pinned, cheaply (``--dry-run``)."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.config import DEFAULT_RUN_OPTIONS, DEFAULT_RUN_TRAINING


def _dry_run(capsys, *args: str) -> dict:
    assert main(["run", "--dry-run", "--json", *args]) == 0
    (run,) = json.loads(capsys.readouterr().out)
    return run


def test_the_default_run_trains_a_fixed_schedule_without_a_time_budget(capsys):
    run = _dry_run(capsys)
    assert run["components"] == {"backbone": "mobilefacenet", "loss": "arcface"}
    training = run["training"]
    assert training["time_budget"] is None
    assert {k: training[k] for k in DEFAULT_RUN_TRAINING} == dict(DEFAULT_RUN_TRAINING)
    # the data: only the number of training identities differs from the generator's defaults
    assert run["options"] == {k: dict(v) for k, v in DEFAULT_RUN_OPTIONS.items()}
    assert set(run["options"]["synthetic"]) == {"train_identities"}


def test_the_default_runs_test_identities_do_not_depend_on_the_training_identities():
    from facebench_plugins.datasets.synthetic import SyntheticFaces

    few, many = SyntheticFaces(train_identities=40), SyntheticFaces(train_identities=120)
    for index in (0, 7, 19):
        assert few.identity("test", index) == many.identity("test", index)
        assert (few.render_with_landmarks("test", index, 3)[0] == many.render_with_landmarks("test", index, 3)[0]).all()


def test_a_users_option_of_the_dataset_replaces_the_default_runs(capsys):
    run = _dry_run(capsys, "-o", "synthetic.seed=3")
    assert run["options"]["synthetic"]["seed"] == 3 and "train_identities" not in run["options"]["synthetic"]


def test_other_training_data_get_none_of_the_default_runs_options(capsys):
    from tests.conftest import need_data

    run = _dry_run(capsys, "--train", f"att={need_data('att_faces')}")
    assert "synthetic" not in run.get("options", {})


def test_a_time_budget_is_the_users_choice(capsys):
    assert _dry_run(capsys, "--time-budget", "30")["training"]["time_budget"] == 30.0


def test_the_default_run_fuses_flipped_embeddings_unless_the_user_says_otherwise(capsys):
    from harness.config import DEFAULT_RUN_FLIP_TEST

    default = _dry_run(capsys)
    assert default["flip_test"] == DEFAULT_RUN_FLIP_TEST == "sum"
    plain = _dry_run(capsys, "--flip-test", "none")  # equal to no fusion, but given: the user's choice wins
    assert plain["flip_test"] == "none" and plain["config_hash"] != default["config_hash"]
    # a run naming its own backbone keeps the model's rule unless it gives --flip-test
    assert "flip_test" not in _dry_run(capsys, "--backbone", "resnet20", "--loss", "softmax")


def test_flip_test_for_a_recognizer_is_refused_in_one_line(capsys, tmp_path):
    code = main(["run", "--recognizer", "dlib_resnet", "--eval", f"lfw={tmp_path}", "--flip-test", "sum",
                 "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "only backbone runs take it" in err and "-o onnx.flip" in err


def test_flip_test_sum_embeds_both_views_and_says_so(tmp_path, monkeypatch):
    """A tiny trained run evaluated with and without flip fusion: the protocol and the
    manifest state the rule, and the scores differ (the flipped view was used)."""
    import numpy as np

    pytest.importorskip("torch")
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    monkeypatch.setenv("FACEBENCH_COST", "off")
    tiny = ["--backbone", "resnet20", "--loss", "softmax", "-o", "resnet20.input_size=32,32",
            "-o", "resnet20.embedding_size=16", "-o", "synthetic.size=32", "-o", "synthetic.train_identities=4",
            "-o", "synthetic.test_identities=6", "-o", "synthetic.images_per_identity=4",
            "-o", "synthetic.pairs_per_fold=5", "--max-steps", "1", "--epochs", "1", "--batch-size", "8",
            "--device", "cpu"]
    scores = {}
    for rule in ("none", "sum"):
        reports = tmp_path / rule
        assert main(["run", *tiny, "--flip-test", rule, "--reports", str(reports)]) == 0
        (run_dir,) = list(reports.glob("runs/*"))
        res = json.loads((run_dir / "results.json").read_text())
        assert res["protocol"]["flip_test"] == rule
        assert res["sections"]["manifest"]["flip"] == rule
        with np.load(run_dir / "scores.npz", allow_pickle=False) as z:
            scores[rule] = z["score"].copy()
    assert scores["none"].shape == scores["sum"].shape and not np.allclose(scores["none"], scores["sum"])


def test_engine_options_without_engine_say_how_to_give_them(capsys):
    assert main(["run", "-o", "torch.threads=2", "--dry-run"]) == 2
    assert "add --engine torch" in capsys.readouterr().err
    assert _dry_run(capsys, "--engine", "torch", "-o", "torch.threads=2")["options"]["torch"] == {"threads": 2}


def test_engine_without_a_backbone_is_refused_in_one_line(capsys, tmp_path):
    # a recognizer runs on its own runtime: --engine would be silently ignored
    code = main(["run", "--recognizer", "dlib_resnet", "--eval", f"lfw={tmp_path}", "--engine", "tf", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "only backbone runs take an engine" in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1
