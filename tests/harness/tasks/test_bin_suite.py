"""The ``.bin`` verification suite (:mod:`harness.tasks.bin_suite`).

insightface's numbers are checked against the transcription of
``recognition/arcface_torch/eval/verification.py`` kept in the metrics tests
(``tests/harness/metrics/test_lfw.py``: ``_ref_roc`` / ``_ref_val``), with
the flip-sum and ``sklearn.preprocessing.normalize`` of its ``test()`` done
here as that function does; then a whole run on two small ``.bin`` files
cut from real LFW images is checked against the same reference on
embeddings recomputed outside the harness.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import normalize

from harness.cli import main
from harness.tasks.bin_suite import insightface_verification, mirror, ordered, printed_lines
from tests.conftest import need_data


def _reference():
    """The metrics tests' transcription of insightface's verification loops."""
    path = Path(__file__).parents[1] / "metrics" / "test_lfw.py"
    spec = importlib.util.spec_from_file_location("_insightface_verification_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REF = _reference()


def _embeddings(n: int, seed: int, *, sort_by_class: bool = False, dim: int = 16):
    """Pairs of raw (unnormalised) embeddings and of their "mirrors", LFW-like or class-sorted."""
    r = np.random.default_rng(seed)
    same = (np.arange(n) // 30) % 2 == 0 if not sort_by_class else np.arange(n) < n // 2
    a = r.standard_normal((n, dim)) * 3.0
    b = np.where(same[:, None], a + 2.5 * r.standard_normal((n, dim)), r.standard_normal((n, dim)) * 3.0)
    fa = a + 0.8 * r.standard_normal((n, dim))
    fb = b + 0.8 * r.standard_normal((n, dim))
    return a, b, fa, fb, same


def _check_against_reference(a, b, fa, fb, same):
    rec = insightface_verification(a, b, fa, fb, same)
    e1, e2 = normalize(a + fa), normalize(b + fb)  # verification.py test(): embeddings_list[0] + [1], normalised
    acc, thr = REF._ref_roc(e1, e2, same)
    np.testing.assert_array_equal(rec["fold_accuracies"], acc)
    np.testing.assert_array_equal(rec["thresholds"], thr)
    assert rec["accuracy_flip"] == np.mean(acc) and rec["accuracy_flip_std"] == np.std(acc)
    acc1, _ = REF._ref_roc(normalize(a), normalize(b), same)  # no mirror: acc1 (commented out in insightface)
    assert rec["accuracy"] == np.mean(acc1) and rec["accuracy_std"] == np.std(acc1)
    norms = [np.linalg.norm(row) for emb in (np.concatenate([a, b]), np.concatenate([fa, fb])) for row in emb]
    assert rec["xnorm"] == pytest.approx(sum(norms) / len(norms), rel=1e-12)
    return rec, e1, e2


@pytest.mark.parametrize("case, n, seed", [
    ("LFW-like folds (half genuine each)", 600, 0),
    ("another draw", 600, 1),
    ("uneven length: the first folds one longer, as KFold", 605, 2),
    ("tiny: one pair per fold", 10, 3),
])
def test_accuracy_flip_equals_insightface_verification(case, n, seed):
    a, b, fa, fb, same = _embeddings(n, seed)
    rec, e1, e2 = _check_against_reference(a, b, fa, fb, same)
    if n >= 600:  # VAL@FAR=1e-3 needs both classes in every test fold
        assert (rec["val"], rec["val_std"], rec["far"]) == pytest.approx(REF._ref_val(e1, e2, same), abs=0)


def test_class_sorted_pairs_keep_accuracy_and_say_why_val_is_undefined():
    """A one-fold LFW subset as a .bin: the 10 contiguous folds each hold one class only."""
    a, b, fa, fb, same = _embeddings(600, 4, sort_by_class=True)
    rec, _, _ = _check_against_reference(a, b, fa, fb, same)
    assert rec["val"] is None and "fold 0 has no different pairs" in rec["val_note"]


def test_zero_sum_rows_stay_zero_as_sklearn_normalize_leaves_them():
    a, b, fa, fb, same = _embeddings(600, 5)
    fa[:7] = -a[:7]  # image + mirror sums to the zero vector
    _check_against_reference(a, b, fa, fb, same)


def test_fewer_pairs_than_folds_is_undefined_with_a_reason():
    a, b, fa, fb, same = _embeddings(9, 6)
    rec = insightface_verification(a, b, fa, fb, same)
    assert rec == {"defined": False, "reason": "9 pair(s): insightface's 10 folds need at least 10"}
    assert printed_lines("lfw", rec) == ["[lfw]not evaluated: 9 pair(s): insightface's 10 folds need at least 10"]


def test_printed_lines_have_insightface_format():
    a, b, fa, fb, same = _embeddings(600, 7)
    lines = printed_lines("cfp_fp", insightface_verification(a, b, fa, fb, same))
    assert re.fullmatch(r"\[cfp_fp\]XNorm: \d+\.\d{6}", lines[0])
    assert re.fullmatch(r"\[cfp_fp\]Accuracy: \d\.\d{5}\+-\d\.\d{5}", lines[1])
    assert re.fullmatch(r"\[cfp_fp\]Accuracy-Flip: \d\.\d{5}\+-\d\.\d{5}", lines[2])


def test_sets_in_insightface_order_then_by_name():
    names = ["zeta", "cplfw", "agedb_30", "lfw", "alpha", "cfp_fp", "vgg2_fp", "calfw", "cfp_ff"]
    assert [n for n, _ in ordered([(n, n) for n in names])] == [
        "lfw", "cfp_ff", "cfp_fp", "agedb_30", "calfw", "cplfw", "vgg2_fp", "alpha", "zeta"]


def test_mirror_flips_left_right_only():
    img = np.arange(2 * 3 * 3).reshape(2, 3, 3).astype(np.uint8)
    (m,) = mirror([img])
    assert np.array_equal(m, img[:, ::-1]) and m.flags.c_contiguous


# ------------------------------------------------------------ a whole run, real LFW crops
def _pairs_file(path: Path, src: Path, folds: tuple[int, ...], per_class: int) -> None:
    """A View-2-format subset: the first ``per_class`` genuine and impostor lines of ``folds``."""
    lines = src.read_text().splitlines()[1:]
    out = [f"{len(folds)}\t{per_class}"]
    for f in folds:
        block = lines[600 * f: 600 * (f + 1)]
        out += block[:per_class] + block[300:300 + per_class]
    path.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def lfw_suite(tmp_path_factory):
    """A folder with two .bin files cut from real LFW images (YuNet + arcface_112 alignment)."""
    home = need_data("lfw_home")
    need_data("weights/yunet")
    d = tmp_path_factory.mktemp("binsuite")
    for name, folds in (("lfw", (0, 1)), ("lfw_extra", (2,))):
        _pairs_file(d / f"{name}.txt", home / "pairs.txt", folds, 5)
        assert main(["data", "bin", str(home / "lfw_funneled"), str(d / f"{name}.txt"), "-o",
                     str(d / "sets" / f"{name}.bin"), "--detector", "yunet", "--no-progress"]) == 0
    return d / "sets"


def test_one_run_evaluates_every_set_of_the_folder(lfw_suite, tmp_path, monkeypatch, fresh_registry):
    """A grid of a recognizer (sface) and a pretrained flip-concat backbone (the CASIA MobileFaceNet)."""
    need_data("weights/sface")
    need_data("weights/mobilefacenet/068.ckpt")
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    monkeypatch.setenv("FACEBENCH_COST", "0")  # no speed timing in a test (harness.tasks._cost)
    assert main(["run", "--recognizer", "sface", "--backbone", "mobilefacenet", "-o", "mobilefacenet.weights=casia",
                 "--eval", f"bin={lfw_suite}", "--reports", str(tmp_path)]) == 0
    runs = {json.loads(p.read_text())["sections"]["bin_suite"]["model"]: p
            for p in tmp_path.glob("runs/*/results.json")}
    assert sorted(runs) == ["mobilefacenet", "sface"]
    for model, path in runs.items():
        res = json.loads(path.read_text())
        suite = res["sections"]["bin_suite"]
        assert [s["name"] for s in suite["sets"]] == ["lfw", "lfw_extra"]
        assert [s["pairs"] for s in suite["sets"]] == [20, 10]
        # facebench's numbers are the run's own: the first set's headline, the second's other_evals record
        acc = {m["name"]: m for m in res["metrics"]}["accuracy"]
        other = {m["name"]: m for m in res["sections"]["other_evals"][0]["metrics"]}["accuracy"]
        assert suite["sets"][0]["facebench"]["accuracy"] == acc["value"]
        assert suite["sets"][1]["facebench"]["accuracy"] == other["value"]
        assert res["protocol"]["path"].endswith("lfw.bin")
        assert len(suite["printed"]) == 6 and suite["printed"][2].startswith("[lfw]Accuracy-Flip: ")
        # real faces, real models: well above chance under both conventions
        assert suite["sets"][0]["insightface"]["accuracy_flip"] >= 0.8 and acc["value"] >= 0.8, model
        page = (path.parent / "index.html").read_text()
        assert 'id="bin-suite-model"' in page and 'id="bin-suite-sets"' in page and "Accuracy-Flip" in page
    mfn = json.loads(runs["mobilefacenet"].read_text())["sections"]["bin_suite"]
    assert mfn["sets"][0]["facebench"]["flip_test"] == "concat"  # its own rule; insightface's still sums
    # insightface's numbers equal the reference on embeddings computed here, outside the run
    sface = fresh_registry.build("recognizer", "sface")
    for s in json.loads(runs["sface"].read_text())["sections"]["bin_suite"]["sets"]:
        ps = fresh_registry.build("dataset", "bin", path=s["path"]).verification()
        crops = [ps.images.load(i) for i in range(len(ps.images.keys))]
        emb, flipped = sface.embed(crops), sface.embed(mirror(crops))
        e1, e2 = normalize(emb[0::2] + flipped[0::2]), normalize(emb[1::2] + flipped[1::2])
        ref_acc, _ = REF._ref_roc(e1.astype(np.float64), e2.astype(np.float64), ps.issame)
        assert s["insightface"]["accuracy_flip"] == pytest.approx(np.mean(ref_acc), abs=1e-12), s["name"]
    # the grid page: a row per model, a column per set
    (grid,) = tmp_path.glob("grids/*.html")
    html = grid.read_text()
    assert 'id="bin-suite-grid"' in html and "mobilefacenet (weights=casia)" in html


# ------------------------------------------------------------ the pages, from results.json alone
def _suite_results(model: str, accs: dict[str, float | None]) -> dict:
    sets = []
    for name, acc in accs.items():
        rec = ({"defined": True, "accuracy_flip": acc, "accuracy_flip_std": 0.01, "accuracy": acc - 0.001,
                "accuracy_std": 0.01, "xnorm": 20.5, "val": None, "val_note": "fold 0 has no different pairs"}
               if acc is not None else {"defined": False, "reason": "9 pair(s)"})
        sets.append({"name": name, "label": {"lfw": "LFW", "cfp_fp": "CFP-FP"}.get(name, name), "pairs": 600,
                     "path": f"/d/{name}.bin", "insightface": rec,
                     "facebench": {"accuracy": (acc or 0.5) - 0.002, "accuracy_std": 0.01, "tar_at_far_1e-3": 0.9,
                                   "eer": 0.02}})
    return {"run_id": f"run-{model}", "task": "recognition", "status": "finished", "metrics": [],
            "protocol": {}, "sections": {"bin_suite": {
                "model": model, "source": ["bin=/d"], "sets": sets, "printed": ["[lfw]XNorm: 20.500000"],
                "conventions": {"insightface": "INSIGHTFACE RULE", "facebench": "FACEBENCH RULE"}}}}


def test_run_page_shows_the_model_by_set_table_and_both_conventions():
    from harness.report._bin_suite import suite_section

    sec = suite_section(_suite_results("sface", {"lfw": 0.995, "cfp_fp": None}))
    model, per_set = sec.tables
    assert [c.label for c in model.columns] == ["Model", "LFW", "CFP-FP"]
    assert [c.text for c in model.rows[0]] == ["sface", "99.50%", "n/a"]
    assert [r[0].text for r in per_set.rows] == ["LFW", "CFP-FP"]
    assert per_set.rows[0][5].text == "n/a" and "no different pairs" in per_set.rows[0][5].title  # VAL undefined
    assert any("INSIGHTFACE RULE" in n for n in sec.notes) and any("FACEBENCH RULE" in n for n in sec.notes)
    assert suite_section({"sections": {}}) is None
    casia = _suite_results("mobilefacenet", {"lfw": 0.985})
    casia["provenance"] = {"config": {"options": {"mobilefacenet": {"weights": "casia"}, "yunet": {"x": 1}}}}
    assert suite_section(casia).tables[0].rows[0][0].text == "mobilefacenet (weights=casia)"


def test_grid_page_has_a_column_per_set_across_models_with_the_best_marked():
    from harness.report._build import build_grid_page
    from harness.report._render import _render, environment

    runs = [("run-a", _suite_results("sface", {"lfw": 0.99, "cfp_fp": 0.9})),
            ("run-b", _suite_results("dlib_resnet", {"lfw": 0.98})),
            ("run-c", {"run_id": "run-c", "task": "recognition", "metrics": [], "sections": {}})]
    page = build_grid_page("g", runs, run_href=lambda r: f"../runs/{r}/index.html", index_href="../index.html")
    (sec,) = page.sections
    (table,) = sec.tables
    assert [c.label for c in table.columns] == ["Run", "Model", "LFW", "CFP-FP", "LFW (facebench)",
                                                "CFP-FP (facebench)"]
    assert [r[1].text for r in table.rows] == ["sface", "dlib_resnet"]  # the run without a suite is left out
    assert table.rows[0][2].best and not table.rows[1][2].best
    assert table.rows[1][3].text == "n/a"
    html = _render(environment(), "grid.html", page)
    assert 'id="bin-suite-grid"' in html and "dlib_resnet" in html
