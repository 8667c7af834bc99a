"""``--skip-bad`` end to end, and protocol statements generated from the folds used.

A small LFW-layout folder is made in a tmp folder from real LFW images
(symlinks) plus one truncated copy of a real JPEG, with a 5-fold pairs file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from tests.conftest import need_data

pytest.importorskip("cv2")

N_FOLDS, PER_CLASS = 5, 2  # 5 folds of 2 genuine + 2 impostor pairs


@pytest.fixture(scope="module")
def bad_lfw(tmp_path_factory) -> tuple[Path, Path, int]:
    """(folder, the truncated file, pairs that use it)."""
    src = (need_data("lfw_home") / "lfw_funneled").resolve()
    names = [d.name for d in sorted(src.iterdir()) if d.is_dir() and len(list(d.glob("*.jpg"))) >= 2]
    names = names[: N_FOLDS * PER_CLASS + 1]
    root = tmp_path_factory.mktemp("badlfw")
    images = root / "lfw_funneled"
    nums = {}
    for n in names:
        (images / n).mkdir(parents=True)
        files = sorted((src / n).glob("*.jpg"))[:2]
        nums[n] = [int(f.stem.rsplit("_", 1)[1]) for f in files]
        for f in files:
            (images / n / f.name).symlink_to(f)
    bad = images / names[0] / f"{names[0]}_{nums[names[0]][0]:04d}.jpg"
    data = bad.read_bytes()
    bad.unlink()
    bad.write_bytes(data[: len(data) // 2])  # a real JPEG cut short
    lines = [f"{N_FOLDS}\t{PER_CLASS}"]
    uses_bad = 0
    k = 0
    for _fold in range(N_FOLDS):
        for _ in range(PER_CLASS):
            n = names[k]
            lines.append(f"{n}\t{nums[n][0]}\t{nums[n][1]}")
            uses_bad += k == 0
            k += 1
        for j in range(PER_CLASS):
            a, b = names[(k - PER_CLASS + j) % len(names)], names[(k - PER_CLASS + j + 1) % len(names)]
            lines.append(f"{a}\t{nums[a][0]}\t{b}\t{nums[b][1]}")
            uses_bad += a == names[0]
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    return root, bad, uses_bad


def _run(*args) -> int:
    return main(["run", *map(str, args)])


def _results(reports: Path) -> dict:
    (path,) = sorted(reports.glob("runs/*/results.json"))
    return json.loads(path.read_text())


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")


def test_without_skip_bad_a_corrupt_jpeg_is_one_line_naming_file_and_flag(bad_lfw, tmp_path, quiet, capsys):
    pytest.importorskip("dlib")
    root, bad, _ = bad_lfw
    code = _run("--recognizer", "dlib_resnet", "--eval", f"lfw={root}", "--reports", tmp_path)
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1, err
    assert str(bad) in err[0] and "--skip-bad" in err[0]


@pytest.mark.parametrize("how", ["flag", "config", "dataset-option"])
def test_skip_bad_drops_the_pairs_of_an_unreadable_image(bad_lfw, tmp_path, quiet, how):
    pytest.importorskip("dlib")
    root, bad, uses_bad = bad_lfw
    args = ["--recognizer", "dlib_resnet", "--eval", f"lfw={root}", "--reports", tmp_path / "reports"]
    if how == "flag":
        args.append("--skip-bad")
    elif how == "config":
        cfg = tmp_path / "run.yaml"
        cfg.write_text("skip_bad: true\n")
        args += ["--config", cfg]
    else:
        args += ["-o", "lfw.skip_bad=true"]
    assert _run(*args) == 0
    res = _results(tmp_path / "reports")
    total = N_FOLDS * PER_CLASS * 2
    assert uses_bad >= 1
    skipped = res["sections"]["skipped"]
    assert skipped["count"] == 1 and skipped["pairs_dropped"] == uses_bad
    assert skipped["items"][0]["item"] == str(bad) and "corrupt" in skipped["items"][0]["reason"]
    proto = res["protocol"]
    assert proto["pairs"] == total - uses_bad and proto["pairs_dropped"] == uses_bad
    assert f"{uses_bad} pair(s) dropped by --skip-bad" in proto["name"]
    # the statement follows the 5 folds of this file, not LFW's 10
    assert proto["threshold_rule"].startswith(f"{N_FOLDS}-fold: threshold chosen on the other {N_FOLDS - 1} folds")
    html = next((tmp_path / "reports").glob("runs/*/index.html")).read_text()
    assert bad.name in html and "Skipped" in html


def test_threshold_rule_is_generated_from_the_folds_used():
    from harness.tasks.recognition import eval_folds, threshold_rule

    issame = np.tile([True, False], 10)
    folds = np.repeat(np.arange(5), 4)
    assert threshold_rule(*eval_folds(issame, folds)).startswith("5-fold: threshold chosen on the other 4 folds")
    one = threshold_rule(*eval_folds(issame, np.zeros(20, int)))
    assert one.startswith("10-fold (stratified sub-folds of one fold): threshold chosen on the other 9 folds")
    assert threshold_rule(np.array([0, 1, 0, 1])).startswith("2-fold: threshold chosen on the other 1 fold ")
    assert "10-fold" not in threshold_rule(np.repeat(np.arange(3), 2))


def test_inpainting_states_the_folds_it_used(bad_lfw):
    from harness.tasks.inpainting import _fold_rule
    from harness.types import ImageSet, PairSet

    images = ImageSet(keys=["a", "b"], labels=[0, 1], loader=lambda k: None)
    pairs = PairSet(images, np.zeros((6, 2)), [True, False] * 3, [0, 0, 1, 1, 2, 2])
    assert _fold_rule(pairs).startswith("3-fold: threshold chosen on the other 2 folds")


def test_training_images_skip_unreadable_items(bad_lfw, tmp_path, fresh_registry):
    """A training set loses the unreadable item (and only it) under --skip-bad."""
    from harness.config import DataRef, RunSpec, TrainSettings
    from harness.errors import DataError
    from harness.results import RunStore
    from harness.tasks import TaskContext
    from harness.tasks._data import train_images

    root, bad, _ = bad_lfw
    ctx = TaskContext(registry=fresh_registry, run_dir=RunStore(tmp_path).create("t", "0" * 10),
                      cache_dir=tmp_path / "cache", progress=False, log=lambda m: None)
    ref = DataRef("mesh", str(root))
    spec = RunSpec(task="inpainting", components={}, train=(ref,), eval=(), options={},
                   training=TrainSettings(), seed=0)
    images, skipped = train_images(ctx, spec, ref)
    with pytest.raises(DataError, match="--skip-bad"):
        for i in range(len(images)):
            images.load(i)
    kept, skipped = train_images(ctx, dataclasses.replace(spec, skip_bad=True), ref)
    assert len(kept) == len(images) - 1 and str(bad) not in kept.keys
    assert len(skipped.items) == 1 and bad.name in skipped.items[0]["reason"]
    assert all(kept.load(i).ndim == 3 for i in range(len(kept)))
