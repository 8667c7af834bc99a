"""``harness run --groups FILE.csv``: validated before anything runs, carried
by recognition runs only, part of the config (hash) and of YAML."""

from __future__ import annotations

import json

from harness.cli import main
from harness.config import RunConfig


def _run(args, capsys):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_groups_reach_recognition_runs_and_change_the_hash(tmp_path, capsys):
    f = tmp_path / "g.csv"
    f.write_text("identity,sex\nA,f\n")
    base = ["run", "--recognizer", "dlib_resnet", "--eval", "lfw=x", "--dry-run", "--json"]
    code, out, err = _run([*base, "--groups", str(f)], capsys)
    assert code == 0, err
    (with_groups,) = json.loads(out)
    assert with_groups["groups"] == str(f)
    code, out, _ = _run(base, capsys)
    (plain,) = json.loads(out)
    assert "groups" not in plain and plain["config_hash"] != with_groups["config_hash"]


def test_a_bad_groups_file_fails_in_one_line_before_running(tmp_path, capsys):
    f = tmp_path / "g.csv"
    f.write_text("name,sex\nA,f\n")
    code, _, err = _run(["run", "--recognizer", "dlib_resnet", "--eval", "lfw=x", "--groups", str(f), "--dry-run"],
                        capsys)
    assert code == 2 and "expected a header starting 'identity' or 'image'" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _run(["run", "--recognizer", "dlib_resnet", "--eval", "lfw=x", "--groups",
                         str(tmp_path / "absent.csv"), "--dry-run"], capsys)
    assert code == 2 and "cannot read groups file" in err


def test_groups_yaml_round_trip_and_only_recognition_carries_it(fresh_registry):
    cfg = RunConfig.from_mapping({"recognizer": "dlib_resnet", "detector": "haar", "eval": "lfw=x",
                                  "groups": "g.csv"})
    assert RunConfig.from_mapping(cfg.to_mapping()).groups == "g.csv"
    runs = RunConfig.from_mapping({"detector": "haar", "eval": "wider=x", "groups": "g.csv"}).expand(fresh_registry)
    assert all(r.groups is None for r in runs)


def test_score_groups_adds_differentials_by_subject(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    people = [f"P{i}" for i in range(40)]
    rows = ["score,label,subject_a,subject_b"]
    for _ in range(1500):
        a, b = rng.choice(40, 2, replace=False)
        same = rng.random() < 0.4
        b = a if same else b
        rows.append(f"{rng.normal(2 if same else 0):.5f},{int(same)},{people[a]},{people[b]}")
    scores = tmp_path / "s.csv"
    scores.write_text("\n".join(rows) + "\n")
    groups = tmp_path / "g.csv"
    groups.write_text("identity,band\n" + "".join(f"P{i},{'ab'[i % 2]}\n" for i in range(40)))
    code, out, err = _run(["score", str(scores), "--reports", str(tmp_path / "r"), "--bootstrap", "50",
                           "--groups", str(groups), "--json"], capsys)
    assert code == 0, err
    dm = json.loads(out)["sections"]["demographics"]
    band = dm["attributes"]["band"]
    assert [g["group"] for g in band["groups"]] == ["a", "b"] and band["ci"]["unit"] == "subjects"
    assert dm["fmr_target"] == 1e-1  # ~900 impostor pairs: 10 false matches are more than 1e-2 of them
    image_keyed = tmp_path / "i.csv"
    image_keyed.write_text("image,band\nx.jpg,a\n")
    code, _, err = _run(["score", str(scores), "--reports", str(tmp_path / "r"), "--groups", str(image_keyed)],
                        capsys)
    assert code == 2 and "needs an 'identity' column" in err
