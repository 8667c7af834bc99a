"""The liveness task through ``harness run``: the metrics core's hand-counted
example reproduced end to end, the splits and the synthetic-attack statement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.hookspecs import hookimpl
from harness.registry import Registry, reset_registry
from harness.specs import LivenessSpec
from tests.conftest import need_data

# The hand-counted example of tests/harness/metrics (threshold 0.5):
# APCER mask 1, print 1/2, replay 1/2; BPCER 1/3; HTER (3/5 + 1/3) / 2.
TEST_ITEMS = [("live", 0.9), ("live", 0.8), ("live", 0.3), ("attack/print", 0.6), ("attack/print", 0.2),
              ("attack/replay", 0.7), ("attack/replay", 0.1), ("attack/mask", 0.55)]
# bpcer20 on this dev split: the highest threshold with BPCER <= 5 % is the lowest bona fide score, 0.5
DEV_ITEMS = [("live", 0.5), ("live", 0.9), ("attack/print", 0.1), ("attack/print", 0.2)]


@dataclass(frozen=True)
class _NoOptions:
    pass


class PixelScore:
    """A fixture 'model': the score is the crop's mean pixel value / 200."""

    def score(self, images):
        return np.array([float(np.asarray(im, np.float64).mean()) / 200.0 for im in images])


class FixtureLiveness:
    __name__ = "fixture_liveness"

    @staticmethod
    @hookimpl
    def register_liveness():
        return [LivenessSpec(name="pixel_score", summary="score = mean pixel / 200 (test fixture)",
                             factory=lambda opts, **kw: PixelScore(), options=_NoOptions,
                             input_size=(112, 112), meta={"input": "face_crop"})]


def _write(root: Path, split: str, items) -> None:
    import cv2

    for i, (folder, score) in enumerate(items):
        p = root / split / folder / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), np.full((112, 112, 3), round(score * 200), np.uint8))


def _results(reports: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(reports.glob("runs/*/results.json"))]


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    reset_registry(None)


def test_protocol_reproduces_hand_counted_metrics(tmp_path, quiet):
    data = tmp_path / "spoof"
    _write(data, "test", TEST_ITEMS)
    _write(data, "dev", DEV_ITEMS)
    reset_registry(Registry(plugins=[FixtureLiveness]))
    code = main(["run", "--liveness", "pixel_score", "--eval", f"spoof={data}", "-o", "spoof.aligned=arcface_112",
                 "-o", "spoof.threshold_rule=bpcer20", "--reports", str(tmp_path / "reports")])
    assert code == 0
    (res,) = _results(tmp_path / "reports")
    lv = res["sections"]["liveness"]
    assert lv["threshold"] == pytest.approx(0.5) and lv["threshold_source"] == "dev"
    assert lv["threshold_rule"] == "bpcer20"
    assert lv["apcer_per_species"] == pytest.approx({"mask": 1.0, "print": 0.5, "replay": 0.5})
    m = {x["name"]: x["value"] for x in res["metrics"]}
    assert m["apcer"] == 1.0 and lv["worst_species"] == "mask"
    assert m["bpcer"] == pytest.approx(1 / 3)
    assert m["acer"] == pytest.approx((1 + 1 / 3) / 2)
    assert m["hter"] == pytest.approx((3 / 5 + 1 / 3) / 2)
    assert 0 < m["eer"] < 0.5
    p = res["protocol"]
    assert p["test_split"] == "test" and p["dev_split"] == "dev" and p["bona_fide"] == 3 and p["attacks"] == 5
    assert p["attack_species"] == {"mask": 1, "print": 2, "replay": 2}
    assert p["synthetic_attacks"] is False and "note" not in p
    run_dir = next((tmp_path / "reports" / "runs").iterdir())
    with np.load(run_dir / "scores.npz") as z:
        assert sorted(z["score"].round(3).tolist()) == sorted(s for _, s in TEST_ITEMS)
        assert z["label"].sum() == 3 and set(z["species"].tolist()) == {"", "print", "replay", "mask"}
    assert "APCER per attack species" in (run_dir / "index.html").read_text()


def test_no_dev_split_is_stated_and_trainable_needs_train_data(tmp_path, quiet):
    data = tmp_path / "spoof"
    _write(data, "", TEST_ITEMS)  # unsplit: serves as the test split
    reset_registry(Registry(plugins=[FixtureLiveness]))
    assert main(["run", "--liveness", "pixel_score", "--eval", f"spoof={data}", "-o", "spoof.aligned=arcface_112",
                 "--reports", str(tmp_path / "r1")]) == 0
    (res,) = _results(tmp_path / "r1")
    assert res["sections"]["liveness"]["threshold_source"] == "test"
    assert res["protocol"]["test_split"] == "(unsplit)" and "optimistic" in res["protocol"]["threshold_warning"]
    # a trainable model with no train split and no --train fails with a clear message
    code = main(["run", "--liveness", "lbp_svm", "--eval", f"spoof={data}", "-o", "spoof.aligned=arcface_112",
                 "--reports", str(tmp_path / "r2")])
    assert code != 0
    log = next((tmp_path / "r2" / "runs").iterdir()) / "run.log"
    assert "needs training data" in log.read_text()


def test_trained_on_synthesized_lfw_attacks_disjoint_identities(tmp_path, quiet):
    """lbp_svm trained on synthesized attacks of some LFW identities, tested on others."""
    lfw = need_data("lfw_home")
    need_data("weights/retinaface/mobilenet0.25_Final.pth")
    from harness.synth import SYNTHETIC_NOTE, synthesize_spoof_set

    data = tmp_path / "spoof"
    s = synthesize_spoof_set(lfw, data, identities=24, seed=3, images_per_identity=2)
    reset_registry(Registry())
    code = main(["run", "--liveness", "lbp_svm", "-o", "lbp_svm.scales=8,1;8,2", "--train", f"spoof={data}",
                 "--eval", f"spoof={data}", "--reports", str(tmp_path / "reports")])
    assert code == 0
    (res,) = _results(tmp_path / "reports")
    p = res["protocol"]
    assert p["synthetic_attacks"] is True and SYNTHETIC_NOTE in p["note"]
    assert p["detector"] == "retinaface" and p["threshold_source"] == "dev" and p["alignment"] == "arcface_112"
    tr = res["sections"]["training"]
    assert tr["presentations"] == 2 * s["counts"]["train"]["live"] and tr["split"] == "train"
    assert p["bona_fide"] == s["counts"]["test"]["live"]
    m = {x["name"]: x["value"] for x in res["metrics"]}
    # the synthesized artefacts are learnable across identities
    assert m["auc"] > 0.8, m
    assert set(res["sections"]["liveness"]["apcer_per_species"]) == {"print", "replay"}
    run_dir = next((tmp_path / "reports" / "runs").iterdir())
    assert (run_dir / "checkpoints" / "lbp_svm.npz").is_file()
    assert "no substitute for a real presentation-attack" in (run_dir / "index.html").read_text()


def test_skip_bad_leaves_out_an_unreadable_presentation(tmp_path, quiet, capsys):
    """The same --skip-bad as every task: one line without it; with it the file is left out and listed."""
    data = tmp_path / "spoof"
    _write(data, "test", TEST_ITEMS + [("attack/print", 0.4)])
    bad = next((data / "test" / "attack" / "print").glob("8.png"))
    bad.write_bytes(bad.read_bytes()[:40])  # a PNG cut short
    reset_registry(Registry(plugins=[FixtureLiveness]))
    args = ["run", "--liveness", "pixel_score", "--eval", f"spoof={data}", "-o", "spoof.aligned=arcface_112"]
    assert main([*args, "--reports", str(tmp_path / "r1")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and bad.name in err[0] and "--skip-bad" in err[0]
    assert main([*args, "--skip-bad", "--reports", str(tmp_path / "r2")]) == 0
    (res,) = _results(tmp_path / "r2")
    assert res["sections"]["skipped"]["count"] == 1 and res["sections"]["skipped"]["items"][0]["item"] == str(bad)
    assert res["protocol"]["skipped_items"] == 1 and res["protocol"]["attacks"] == 5
