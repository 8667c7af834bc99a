"""Identification (1:N): protocol construction, exact search against brute force, settings and
config, and `harness run --protocol identification|open-set` end to end on real faces."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from harness.config import RunConfig
from harness.errors import ConfigError, DataError
from harness.tasks.identification import IdentificationSettings, search, split_trial, summarise
from tests.conftest import need_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 12 identities with 1..7 images, in an interleaved order (dataset order is not identity order)
LABELS = np.array([i for n in range(7) for i in range(12) if (i % 7) + 1 > n])


# ---------------------------------------------------------------- protocol construction
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("pick", ["first", "random"])
def test_closed_set_split_invariants(k, pick):
    sp = split_trial(LABELS, k=k, pick=pick, seed=3)
    assert not np.intersect1d(sp.gallery, sp.probes).size
    assert np.array_equal(np.union1d(sp.gallery, sp.probes), np.arange(len(LABELS)))  # every image used once
    ids, counts = np.unique(LABELS, return_counts=True)
    g_ids, g_counts = np.unique(LABELS[sp.gallery], return_counts=True)
    assert np.array_equal(g_ids, ids)  # closed set: every identity is in the gallery
    np.testing.assert_array_equal(g_counts, np.minimum(counts, k))  # K each; short identities whole
    assert np.isin(LABELS[sp.probes], LABELS[sp.gallery]).all()  # every probe has a mate
    assert sp.unknown.size == 0
    if pick == "first":  # the first K in dataset order
        for i in ids:
            assert np.array_equal(np.intersect1d(sp.gallery, np.flatnonzero(LABELS == i)),
                                  np.flatnonzero(LABELS == i)[:k])


def test_open_set_split_leaves_a_seeded_share_of_identities_out():
    sp = split_trial(LABELS, k=1, open_set=True, unknown_fraction=0.3, seed=5)
    ids, counts = np.unique(LABELS, return_counts=True)
    searchable = ids[counts > 1]
    assert sp.unknown.size == round(0.3 * searchable.size)
    assert np.isin(sp.unknown, searchable).all()
    assert not np.isin(LABELS[sp.gallery], sp.unknown).any()  # non-mated identities absent from the gallery
    singletons = ids[counts == 1]
    assert not np.isin(LABELS[sp.gallery], singletons).any()  # 1-image identities: non-mated searches
    nonmated = ~np.isin(LABELS[sp.probes], LABELS[sp.gallery])
    assert set(LABELS[sp.probes][nonmated]) == set(sp.unknown) | set(singletons)
    assert not np.intersect1d(sp.gallery, sp.probes).size
    assert np.array_equal(np.union1d(sp.gallery, sp.probes), np.arange(len(LABELS)))


def test_splits_are_reproducible_in_the_seed_and_vary_with_it():
    a = split_trial(LABELS, k=2, pick="random", open_set=True, seed=11)
    b = split_trial(LABELS, k=2, pick="random", open_set=True, seed=11)
    assert np.array_equal(a.gallery, b.gallery) and np.array_equal(a.unknown, b.unknown)
    others = [split_trial(LABELS, k=2, pick="random", open_set=True, seed=s) for s in range(12, 20)]
    assert any(not np.array_equal(a.gallery, o.gallery) for o in others)


def test_split_refuses_data_with_nothing_to_search():
    with pytest.raises(DataError, match="no identity has more than 3"):
        split_trial([0, 0, 1, 2, 2, 2], k=3)
    with pytest.raises(DataError, match="at least 2 identities"):
        split_trial([0, 0, 1], k=1, open_set=True)


# ---------------------------------------------------------------- exact search vs brute force
def _brute(probes, p_ids, gallery, g_ids, distance="cosine"):
    """Per probe: mate rank over identities (max over entries, ties against), mate score, top score."""
    ranks, mates, tops = [], [], []
    for p, pid in zip(probes, p_ids):
        best = {}
        for g, gid in zip(gallery, g_ids):
            if distance == "cosine":
                s = float(np.dot(p, g) / (np.linalg.norm(p) * np.linalg.norm(g)))
            else:
                s = -float(np.linalg.norm(p - g))
            best[gid] = max(best.get(gid, -np.inf), s)
        tops.append(max(best.values()))
        if pid in best:
            mates.append(best[pid])
            ranks.append(1 + sum(v >= best[pid] for k, v in best.items() if k != pid))
        else:
            mates.append(np.nan)
            ranks.append(0)
    return np.array(ranks), np.array(mates), np.array(tops)


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_blocked_search_matches_brute_force(distance):
    r = np.random.default_rng(0)
    gallery = r.normal(size=(40, 8)).astype(np.float32)
    g_ids = r.integers(0, 15, 40)
    probes = r.normal(size=(33, 8)).astype(np.float32)
    p_ids = r.integers(0, 18, 33)  # some identities have no gallery entry: non-mated
    ranks, mates, tops = _brute(probes, p_ids, gallery, g_ids, distance)
    res = search(probes, p_ids, gallery, g_ids, distance=distance, top_k=5)
    np.testing.assert_array_equal(res.rank, ranks)
    np.testing.assert_allclose(res.mate_score, mates, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res.top_score, tops, rtol=1e-5, atol=1e-5)
    # top-k identities: the full sort's first five
    for i in range(33):
        ids = np.unique(g_ids)
        pooled = [max(-np.linalg.norm(probes[i] - gallery[j]) if distance == "euclidean" else
                      np.dot(probes[i], gallery[j]) / np.linalg.norm(probes[i]) / np.linalg.norm(gallery[j])
                      for j in np.flatnonzero(g_ids == gid)) for gid in ids]
        np.testing.assert_array_equal(res.top_ids[i], ids[np.argsort(pooled)[::-1][:5]])


def test_search_blocks_really_split_and_ties_count_against_the_probe(monkeypatch):
    import harness.tasks.identification as ident

    calls = []
    real = ident._scores
    monkeypatch.setattr(ident, "_scores", lambda p, *a: calls.append(len(p)) or real(p, *a))
    gallery = np.array([[1, 0], [1, 0], [0, 1]], np.float32)  # identities 0 and 1 identical: a tie
    probes = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    res = search(probes, [0, 2, 7], gallery, [0, 1, 2], max_memory=1 << 20, top_k=2)
    assert res.rank.tolist() == [2, 1, 0]  # tied with identity 1 -> rank 2; identity 7 is not in the gallery
    assert res.top_ids[0].tolist() == [0, 1]  # equal scores ordered by identity
    assert calls == [3]
    r = np.random.default_rng(2)
    gallery, probes = r.normal(size=(3000, 4)), r.normal(size=(200, 4))
    g_ids, p_ids = np.arange(3000), r.integers(0, 3500, 200)
    calls.clear()
    small = search(probes, p_ids, gallery, g_ids, max_memory=1 << 20)  # 4 B x 3000 columns: 87 probes a block
    assert calls == [87, 87, 26]
    whole = search(probes, p_ids, gallery, g_ids, max_memory=1 << 30)
    for a, b in zip(dataclasses.astuple(small), dataclasses.astuple(whole)):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- summaries and settings
def test_summaries_over_trials():
    r = np.random.default_rng(1)
    centres = r.normal(size=(12, 16))
    emb = centres[LABELS] + 0.3 * r.normal(size=(len(LABELS), 16))
    closed = summarise(LABELS, emb, IdentificationSettings(trials=4, gallery_pick="random"), open_set=False)
    names = [m["name"] for m in closed["metrics"]]
    assert names == ["rank1", "rank5", "rank10"]
    assert closed["section"]["trials"] == 4 and closed["metrics"][0]["value"] > 0.9
    assert closed["curve"]["rate"] == sorted(closed["curve"]["rate"])  # a CMC never decreases
    first = summarise(LABELS, emb, IdentificationSettings(trials=4), open_set=False)
    assert first["section"]["trials"] == 1  # nothing random: one trial, and said so
    assert "nothing random" in first["section"]["protocol"]["trials_rule"]
    open_ = summarise(LABELS, emb, IdentificationSettings(trials=3, unknown_fraction=0.4), open_set=True)
    table = {row["fpir_target"]: row for row in open_["section"]["table"]}
    assert not table[1e-3]["defined"] and table[1e-3]["fnir"] is None  # too few non-mated searches
    assert table[0.1]["defined"] and table[0.1]["tpir"] == pytest.approx(1 - table[0.1]["fnir"])
    assert "NISTIR 8271" in open_["section"]["protocol"]["threshold_rule"]
    assert open_["curve"]["fpir"][0] == 0.0 and open_["curve"]["fnir"][0] == 1.0  # T = +inf


@pytest.mark.parametrize("values, match", [
    ({"gallery_size": 0}, "gallery_size"), ({"gallery_pick": "last"}, "gallery_pick"),
    ({"unknown_fraction": 1.0}, "unknown_fraction"), ({"trials": "x"}, "trials"), ({"trails": 3}, "trails"),
])
def test_settings_refuse_bad_values(values, match):
    with pytest.raises(ConfigError, match=match):
        IdentificationSettings.from_options(values)
    assert IdentificationSettings.from_options({"gallery_size": "2", "trials": "3"}).gallery_size == 2


def test_protocol_is_a_typed_config_key(fresh_registry):
    with pytest.raises(ConfigError, match="protocol"):
        RunConfig(recognizers=("dlib_resnet",), eval=("att",), protocol="1:N")
    base = RunConfig(recognizers=("dlib_resnet",), eval=("att",))
    (ver,) = base.expand(fresh_registry)
    (ident,) = base.merged({"protocol": "identification", "options": {"identification": {"trials": "3"}}}) \
        .expand(fresh_registry)
    assert ver.protocol == "verification" and "protocol" not in ver.to_dict()  # old hashes unchanged
    assert ident.protocol == "identification" and ident.config_hash() != ver.config_hash()
    assert ident.options["identification"] == {"trials": 3}  # converted by IdentificationSettings: one hash
    loaded = RunConfig.from_mapping({"recognizer": "dlib_resnet", "eval": "att", "protocol": "open-set"})
    assert loaded.protocol == "open-set" and loaded.to_mapping()["protocol"] == "open-set"
    with pytest.raises(ConfigError, match="identification"):  # 1:N settings without a 1:N protocol
        base.merged({"options": {"identification": {"trials": 3}}}).expand(fresh_registry)


# ---------------------------------------------------------------- end to end on real faces
def _run(tmp_path, *args) -> dict:
    from harness.cli import main

    code = main(["run", "--recognizer", "dlib_resnet", "--reports", str(tmp_path), *map(str, args)])
    assert code == 0
    (path,) = tmp_path.glob("runs/*/results.json")
    return json.loads(path.read_text())


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")


def test_att_closed_set_end_to_end(tmp_path, quiet, capsys):
    att = need_data("att_faces")
    # att's evaluation images are those its generated pairs use: 5 subjects hold 225 genuine pairs
    res = _run(tmp_path, "--eval", f"att={att}", "-o", "att.test_subjects=31-35", "-o", "att.pairs_per_fold=20",
               "--protocol", "identification")
    metrics = {m["name"]: m for m in res["metrics"]}
    n = res["protocol"]["images"]
    assert 40 <= n <= 50 and res["protocol"]["identities"] == 5
    assert res["sections"]["identification"]["probes"] == n - 5
    assert metrics["rank1"]["value"] >= 0.75, metrics["rank1"]  # measured 0.822 (AT&T crops resized)
    assert metrics["rank5"]["value"] == 1.0  # 5 gallery identities
    assert len(res["curves"]["cmc"]["rate"]) == 5
    assert "identification: rank1 0." in capsys.readouterr().err  # printed to the run log, not only written
    page = next(tmp_path.glob("runs/*/index.html")).read_text()
    assert 'data-plot="cmc"' in page and 'id="rank-k"' in page


def test_att_open_set_end_to_end(tmp_path, quiet):
    att = need_data("att_faces")
    res = _run(tmp_path, "--eval", f"att={att}", "-o", "att.test_subjects=31-38", "-o", "identification.trials=2",
               "-o", "identification.unknown_fraction=0.25", "--protocol", "open-set")
    table = {row["fpir_target"]: row for row in res["sections"]["open_set"]["table"]}
    assert res["sections"]["open_set"]["unknown_identities"] == 2  # 2 of 8 subjects left out
    assert res["sections"]["open_set"]["nonmated_searches"] >= 10
    assert table[0.1]["defined"] and 0.0 <= table[0.1]["fnir"] <= 0.6, table[0.1]
    names = {m["name"] for m in res["metrics"]}
    assert {"fnir_at_fpir_1e-1", "tpir_at_fpir_1e-2", "rank1_hit_at_fpir_1e-1"} <= names
    assert res["curves"]["open_set_det"]["fpir"]
    page = next(tmp_path.glob("runs/*/index.html")).read_text()
    assert 'data-plot="open-set-det"' in page and 'id="fnir-at-fpir"' in page


def test_imagefolder_of_real_photos_with_a_detector(tmp_path, quiet):
    """LFW photos as an identity-folder tree: detected (dlib HOG), aligned by dlib, searched."""
    lfw = need_data("lfw_home/lfw_funneled")
    root = tmp_path / "photos"
    people = [p for p in sorted(os.listdir(lfw)) if len(os.listdir(lfw / p)) >= 4][:5]
    for p in people:
        (root / p).mkdir(parents=True)
        for f in sorted(os.listdir(lfw / p))[:3]:
            shutil.copy(lfw / p / f, root / p / f)
    res = _run(tmp_path / "reports", "--detector", "dlib_hog", "--eval", f"imagefolder={root}",
               "--protocol", "identification")
    assert res["protocol"]["detector"] == "dlib_hog" and res["protocol"]["images"] == 15
    rank1 = next(m["value"] for m in res["metrics"] if m["name"] == "rank1")
    assert rank1 >= 0.8, rank1


def test_a_training_run_is_refused_with_a_way_forward(tmp_path, quiet):
    from harness.cli import main

    code = main(["run", "--backbone", "resnet20", "--loss", "arcface", "--protocol", "identification",
                 "--max-steps", "1", "--reports", str(tmp_path)])
    assert code != 0
    log = "\n".join(p.read_text() for p in tmp_path.glob("runs/*/results.json"))
    assert "weights=CHECKPOINT" in log


def test_all_runs_verification_and_both_searches(tmp_path, quiet):
    """`--protocol all` on a dataset with pairs: verification, closed and open set in one results.json
    (the example plugin's pixel baseline: fast, and far from perfect, so nothing is trivially 1)."""
    from harness.cli import main

    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    att = need_data("att_faces")
    code = main(["run", "--recognizer", "example_pixels", "--eval", f"att={att}", "-o", "att.test_subjects=31-38",
                 "--protocol", "all", "-o", "identification.trials=2", "--reports", str(tmp_path)])
    assert code == 0
    (path,) = tmp_path.glob("runs/*/results.json")
    res = json.loads(path.read_text())
    names = {m["name"] for m in res["metrics"]}
    assert {"accuracy", "rank1", "rank10", "fnir_at_fpir_1e-1"} <= names
    assert res["protocol"]["pairs"] > 0 and "identification + open-set" in res["protocol"]["identification"]
    assert {"identification", "open_set"} <= set(res["sections"])
    assert {"roc", "cmc", "open_set_det"} <= set(res["curves"])


def test_run_page_states_undefined_open_set_targets():
    from harness.report._build import build_run_page

    results = {"task": "recognition", "metrics": [], "protocol": {"dataset": "att"},
               "sections": {"open_set": {"candidate_list": 10, "mated_searches": 40, "nonmated_searches": 20,
                                         "table": [{"fpir_target": 0.001, "fnir": None, "defined": False},
                                                   {"fpir_target": 0.1, "fnir": 0.25, "tpir": 0.75,
                                                    "rank1_hit_rate": 0.7, "threshold": 0.41, "defined": True}]},
                            "identification": {"trials": 3, "rank": [{"k": 1, "mean": 0.9, "std": 0.01}]}},
               "curves": {"cmc": {"rank": [1, 2], "rate": [0.9, 1.0]}}}
    page = build_run_page(results, index_href="../index.html", grid_href="")
    (sec,) = [s for s in page.sections if s.id == "identification"]
    tables = {t.id: t for t in sec.tables}
    fnir = [row[1].text for row in tables["fnir-at-fpir"].rows]
    assert fnir == ["n/a", "25.00%"]
    assert tables["rank-k"].rows[0][1].text == "90.00%"
    assert len(sec.plots) == 1 and 'data-plot="cmc"' in str(sec.plots[0])


def test_a_trained_backbone_searches_with_random_galleries(tmp_path, quiet):
    """The CASIA MobileFaceNet checkpoint through the backbone path; random K=1 galleries over 3 trials."""
    from harness.cli import main

    att = need_data("att_faces")
    need_data("weights/mobilefacenet/068.ckpt")
    code = main(["run", "--backbone", "mobilefacenet", "-o", "mobilefacenet.weights=casia", "--eval", f"att={att}",
                 "-o", "att.test_subjects=31-38", "--protocol", "identification", "-o", "identification.trials=3",
                 "-o", "identification.gallery_pick=random", "--reports", str(tmp_path)])
    assert code == 0
    (path,) = tmp_path.glob("runs/*/results.json")
    res = json.loads(path.read_text())
    rank1 = next(m for m in res["metrics"] if m["name"] == "rank1")
    assert res["sections"]["identification"]["trials"] == 3 and rank1["std"] is not None
    assert rank1["value"] >= 0.9, rank1  # measured 0.967 ± 0.011 over 5 trials
    assert res["protocol"]["alignment"].startswith("none (already aligned")


def test_skip_bad_leaves_unreadable_images_out_of_the_search(tmp_path, quiet):
    """An identity folder with a corrupt image: without --skip-bad one clear error; with it the image is
    left out, counted and listed, and the search runs on the rest."""
    from harness.cli import main

    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    att = need_data("att_faces")
    root = tmp_path / "faces"
    for s in ("s1", "s2", "s3"):
        (root / s).mkdir(parents=True)
        for k in range(1, 5):
            shutil.copy(att / s / f"{k}.pgm", root / s / f"{k}.pgm")
    (root / "s2" / "9.pgm").write_bytes(b"not an image")
    args = ["run", "--recognizer", "example_pixels", "--eval", f"imagefolder={root}", "-o",
            "imagefolder.aligned=att_92x112", "--protocol", "identification"]
    assert main([*args, "--reports", str(tmp_path / "a")]) != 0
    assert main([*args, "--skip-bad", "--reports", str(tmp_path / "b")]) == 0
    (path,) = (tmp_path / "b").glob("runs/*/results.json")
    res = json.loads(path.read_text())
    assert res["protocol"]["images"] == 12 and res["sections"]["skipped"]["count"] == 1


# ---------------------------------------------------------------- search options and scaling
def test_search_backends_and_memory_bounds_agree():
    """numpy and torch scoring, tiny and large blocks, one identity per entry and pooled: one answer."""
    from harness.metrics.search import SearchOptions

    r = np.random.default_rng(4)
    gallery, probes = r.normal(size=(2500, 12)), r.normal(size=(90, 12))
    for g_ids in (np.arange(2500), r.integers(0, 700, 2500)):
        p_ids = r.integers(0, 800, 90)
        ref = search(probes, p_ids, gallery, g_ids, options=SearchOptions(backend="numpy", max_memory=1 << 30))
        for opts in (SearchOptions(backend="numpy", max_memory=1 << 20), SearchOptions(backend="torch", device="cpu")):
            if opts.backend == "torch":
                pytest.importorskip("torch")
            got = search(probes, p_ids, gallery, g_ids, options=opts)
            np.testing.assert_array_equal(got.rank, ref.rank)
            np.testing.assert_array_equal(got.top_ids, ref.top_ids)
            np.testing.assert_allclose(got.top_scores, ref.top_scores, rtol=1e-5, atol=1e-6)


def test_search_options_are_a_one_to_n_option_group(fresh_registry):
    base = RunConfig(recognizers=("dlib_resnet",), eval=("att",), protocol="identification",
                     options={"search": {"backend": "numpy", "max_memory": "2097152"}})
    (spec,) = base.expand(fresh_registry)
    assert spec.options["search"] == {"backend": "numpy", "max_memory": 2097152}
    with pytest.raises(ConfigError, match="search"):  # search settings without a 1:N protocol
        RunConfig(recognizers=("dlib_resnet",), eval=("att",),
                  options={"search": {"backend": "numpy"}}).expand(fresh_registry)
    with pytest.raises(ConfigError, match="come as a pair"):
        IdentificationSettings.from_options({"gallery": "g.txt"})


# ---------------------------------------------------------------- protocols defined by files
def _att_folder(tmp_path, subjects=("s1", "s2", "s3", "s4"), per=5):
    att = need_data("att_faces")
    root = tmp_path / "faces"
    for s in subjects:
        (root / s).mkdir(parents=True)
        for k in range(1, per + 1):
            shutil.copy(att / s / f"{k}.pgm", root / s / f"{k}.pgm")
    return root


def test_gallery_and_probe_lists_define_the_protocol(tmp_path, quiet):
    """Gallery: the first image of s1-s3; probes: the rest of s1-s3 and three of s4 (not in the
    gallery: non-mated).  Identities from the lists' second field, or the dataset's folder names."""
    from harness.cli import main

    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    root = _att_folder(tmp_path)
    (tmp_path / "gallery.txt").write_text("# gallery\ns1/1.pgm\ts1\ns2/1.pgm s2\ns3/1.pgm\n")
    probes = [f"{s}/{k}.pgm" for s in ("s1", "s2", "s3") for k in range(2, 6)] + ["s4/1.pgm", "s4/2.pgm", "s4/3.pgm"]
    (tmp_path / "probes.txt").write_text("\n".join(probes) + "\n")
    args = ["run", "--recognizer", "example_pixels", "--eval", f"imagefolder={root}", "-o",
            "imagefolder.aligned=att_92x112", "--protocol", "all", "-o", f"identification.gallery={tmp_path}/gallery.txt",
            "-o", f"identification.probes={tmp_path}/probes.txt", "-o", "search.backend=numpy",
            "--reports", str(tmp_path / "r")]
    assert main(args) == 0
    (path,) = (tmp_path / "r").glob("runs/*/results.json")
    res = json.loads(path.read_text())
    closed, open_ = res["sections"]["identification"], res["sections"]["open_set"]
    assert closed["gallery_images"] == 3 and closed["probes"] == 15 and closed["trials"] == 1
    assert closed["nonmated_left_out"] == 3 and "defined by files" in closed["protocol"]["gallery_rule"]
    assert open_["mated_searches"] == 12 and open_["nonmated_searches"] == 3 and open_["unknown_identities"] == 1
    assert res["protocol"]["gallery_list"].endswith("gallery.txt") and res["protocol"]["images"] == 18
    assert "backend numpy" in res["protocol"]["search"]
    rank1 = next(m["value"] for m in res["metrics"] if m["name"] == "rank1")
    assert 0.0 < rank1 <= 1.0 and res["curves"]["cmc"]["rank"] == [1, 2, 3]
    cand = np.load(next((tmp_path / "r").glob("runs/*/identification_candidates.npz")))
    assert len(cand["rank"]) == 15 and (cand["rank"] == 0).sum() == 3  # s4's probes: no mate


def test_lists_naming_unknown_images_or_one_list_are_refused(tmp_path, quiet):
    from harness.cli import main

    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    root = _att_folder(tmp_path, subjects=("s1", "s2"), per=2)
    (tmp_path / "g.txt").write_text("s1/1.pgm\ns2/9.pgm\n")
    (tmp_path / "p.txt").write_text("s1/2.pgm\n")
    base = ["run", "--recognizer", "example_pixels", "--eval", f"imagefolder={root}", "-o",
            "imagefolder.aligned=att_92x112", "--protocol", "identification", "--reports", str(tmp_path / "r")]
    assert main([*base, "-o", f"identification.gallery={tmp_path}/g.txt"]) == 2
    assert main([*base, "-o", f"identification.gallery={tmp_path}/g.txt",
                 "-o", f"identification.probes={tmp_path}/p.txt"]) == 2
    logs = "\n".join(p.read_text() for p in (tmp_path / "r").glob("runs/*/results.json"))
    assert "g.txt:2: 's2/9.pgm' is not an image of the evaluated dataset" in logs


def test_gallery_and_probes_flags_are_the_identification_list_options(tmp_path, capsys):
    from harness.cli import main

    base = ["run", "--recognizer", "dlib_resnet", "--eval", f"imagefolder={tmp_path}", "--dry-run", "--json"]
    lists = [f"identification.gallery={tmp_path}/g.txt", f"identification.probes={tmp_path}/p.txt"]
    assert main([*base, "--protocol", "identification", "--gallery", f"{tmp_path}/g.txt",
                 "--probes", f"{tmp_path}/p.txt"]) == 0
    (by_flag,) = json.loads(capsys.readouterr().out)
    assert main([*base, "--protocol", "identification", "-o", lists[0], "-o", lists[1]]) == 0
    (by_option,) = json.loads(capsys.readouterr().out)
    assert by_flag["config_hash"] == by_option["config_hash"]
    assert by_flag["options"]["identification"] == {"gallery": f"{tmp_path}/g.txt", "probes": f"{tmp_path}/p.txt"}
    assert main([*base, "--protocol", "identification", "--gallery", f"{tmp_path}/g.txt"]) == 2
    assert "come as a pair" in capsys.readouterr().err
    assert main([*base, "--gallery", f"{tmp_path}/g.txt", "--probes", f"{tmp_path}/p.txt"]) == 2
    assert "add --protocol identification" in capsys.readouterr().err
