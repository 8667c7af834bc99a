"""The no-argument default run is reproducible: a fixed, seeded schedule
(no time budget unless the user gives one) on the synthetic data as its
generator renders it by default (more training identities, the same test
identities).  Its accuracy and wall time were measured
by hand (see ``DEFAULT_RUN_TRAINING`` in ``harness/config.py``); here the
schedule itself is pinned, cheaply (``--dry-run``)."""

from __future__ import annotations

import json

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
