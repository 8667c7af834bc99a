"""IJB-layout template protocols: the reader, media-then-template pooling, 1:1 template verification
and 1:N template search, checked against a brute-force per-template computation on an IJB-layout
fixture built from LFW's identity structure (no IJB data is here: it is licensed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError, DataError
from harness.formats.ijb import read_ijb
from harness.tasks.templates import FAR_TARGETS, evaluate_templates, template_features
from tests.conftest import need_data


def build_ijb_fixture(lfw: Path, out: Path, n_ids: int = 12, prefix: str = "ijbc") -> dict:
    """An IJB-C layout from LFW identities with >= 4 images: two templates per identity (first and
    second half of its images), mixed media (the first two images of a template are one "video"
    media, the others stills); all template pairs 1:1; 1:N with G1 = the first templates of
    identities 0-4, G2 = of 5-9, probes = the second templates of all (10 and 11 in no gallery)."""
    people = [p for p in sorted(os.listdir(lfw)) if len(os.listdir(lfw / p)) >= 4][:n_ids]
    meta, crops = out / "meta", out / "loose_crop"
    meta.mkdir(parents=True)
    crops.mkdir()
    faces, tmpl_subject, n, media = [], {}, 0, 1000
    for s, person in enumerate(people):
        files = sorted(os.listdir(lfw / person))
        half = len(files) // 2
        for t, part in ((2 * s + 1, files[:half]), (2 * s + 2, files[half:])):
            tmpl_subject[t] = s
            for j, f in enumerate(part):
                n += 1
                if j == 0 or j >= 2:
                    media += 1
                os.symlink(lfw / person / f, crops / f"{n}.jpg")
                faces.append((f"{n}.jpg", t, media, s))
    (meta / f"{prefix}_face_tid_mid.txt").write_text("".join(f"{a} {t} {m}\n" for a, t, m, _ in faces))
    (meta / f"{prefix}_name_5pts_score.txt").write_text(
        "".join(f"{a} " + " ".join(str(30 + k) for k in range(10)) + " 0.99\n" for a, *_ in faces))
    ts = sorted(tmpl_subject)
    pairs = [(a, b, int(tmpl_subject[a] == tmpl_subject[b])) for i, a in enumerate(ts) for b in ts[i + 1:]]
    (meta / f"{prefix}_template_pair_label.txt").write_text("".join(f"{a} {b} {y}\n" for a, b, y in pairs))
    head = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n"
    for name, rule in (("gallery_G1", lambda t, s: t % 2 == 1 and s < 5),
                       ("gallery_G2", lambda t, s: t % 2 == 1 and 5 <= s < 10),
                       ("probe_mixed", lambda t, s: t % 2 == 0)):
        rows = [f"{t},{s},loose_crop/{a}\n" for a, t, _m, s in faces if rule(t, s)]
        (meta / f"{prefix}_1N_{name}.csv").write_text(head + "".join(rows))
    return {"faces": faces, "subjects": [s for *_, s in faces]}


@pytest.fixture
def ijb(tmp_path):
    lfw = need_data("lfw_home/lfw_funneled")
    info = build_ijb_fixture(lfw, tmp_path / "IJBC")
    r = np.random.default_rng(0)
    centres = r.normal(size=(12, 16))
    emb = centres[info["subjects"]] + 1.2 * r.normal(size=(len(info["faces"]), 16))
    return read_ijb(tmp_path / "IJBC"), emb, info


def _brute_template(emb, faces, pooling):
    """{template: unit feature}, one template at a time with dicts and loops."""
    out = {}
    for t in sorted({f[1] for f in faces}):
        rows = [(i, f[2]) for i, f in enumerate(faces) if f[1] == t]
        if pooling == "media":
            acc = np.zeros(emb.shape[1])
            for m in sorted({m for _, m in rows}):
                acc += np.mean([emb[i] for i, mm in rows if mm == m], axis=0)
        else:
            acc = np.mean([emb[i] for i, _ in rows], axis=0)
        out[t] = acc / np.linalg.norm(acc)
    return out


def _brute_tar(scores, labels, far):
    best = 0.0
    for t in np.r_[np.unique(scores), np.inf]:
        if np.mean(scores[labels == 0] >= t) <= far:
            best = max(best, float(np.mean(scores[labels == 1] >= t)))
    return best


@pytest.mark.parametrize("pooling", ["media", "mean"])
def test_template_protocols_match_brute_force(ijb, pooling):
    meta, emb, info = ijb
    assert meta.prefix == "ijbc" and meta.landmarks.shape == (len(info["faces"]), 5, 2)
    res = evaluate_templates(meta, emb, pooling=pooling)
    feats = _brute_template(emb, info["faces"], pooling)
    tids, mine = template_features(emb, meta.templates, meta.medias, pooling=pooling)
    for t, f in zip(tids, mine):
        np.testing.assert_allclose(f, feats[t], rtol=0, atol=1e-9)
    scores = np.array([feats[a] @ feats[b] for a, b in meta.pairs])
    np.testing.assert_allclose(res["verification"]["scores"], scores, rtol=0, atol=1e-9)
    for row, far in zip(res["verification"]["tar_at_far"], FAR_TARGETS):
        assert row["tar"] == pytest.approx(_brute_tar(scores, meta.labels, far), abs=1e-9)
    p_t, p_s = meta.probes
    for name, (g_t, g_s) in meta.galleries.items():
        ranks = []
        for t, s in zip(p_t, p_s):
            sc = {gs: feats[t] @ feats[gt] for gt, gs in zip(g_t, g_s)}
            ranks.append(0 if s not in sc else 1 + sum(v >= sc[s] for k, v in sc.items() if k != s))
        ranks = np.array(ranks)
        np.testing.assert_array_equal(res["identification"][name]["ranks"], ranks)
        for k in (1, 5, 10):
            assert res["identification"][name][f"rank{k}"] == pytest.approx(np.mean(ranks[ranks > 0] <= k), abs=1e-9)
        assert res["identification"][name]["mated"] == 5  # 5 subjects per gallery; 7 probes are non-mated


def test_media_pooling_differs_from_the_plain_mean(ijb):
    meta, emb, _ = ijb
    _, media = template_features(emb, meta.templates, meta.medias, pooling="media")
    _, mean = template_features(emb, meta.templates, meta.medias, pooling="mean")
    assert np.abs(media - mean).max() > 1e-3  # the "video" media weighs as one still
    with pytest.raises(ConfigError, match="pooling"):
        template_features(emb, meta.templates, meta.medias, pooling="max")


def test_reader_names_the_bad_line(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "ijbb_face_tid_mid.txt").write_text("1.jpg 1 1\n2.jpg 1\n")
    (meta / "ijbb_template_pair_label.txt").write_text("1 1 1\n")
    with pytest.raises(DataError, match=r"ijbb_face_tid_mid.txt, line 2: 2 column\(s\)"):
        read_ijb(tmp_path)
    (meta / "ijbb_face_tid_mid.txt").write_text("1.jpg 1 1\n")
    (meta / "ijbb_template_pair_label.txt").write_text("1 7 0\n")
    with pytest.raises(DataError, match="template 7 has no face"):
        read_ijb(tmp_path)
    with pytest.raises(DataError, match="expected one meta/"):
        read_ijb(tmp_path / "meta")


def test_harness_run_on_an_ijb_release(tmp_path, monkeypatch):
    """`harness run --eval ijb=PATH`: faces aligned from the release's landmarks, embedded, pooled,
    and the 1:1 and 1:N tables written (the example plugin's pixel baseline: fast)."""
    import json

    from harness.cli import main

    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    pytest.importorskip("facebench_example", reason="the example plugin (pip install -e examples/…)")
    lfw = need_data("lfw_home/lfw_funneled")
    build_ijb_fixture(lfw, tmp_path / "IJBC", n_ids=6)
    code = main(["run", "--recognizer", "example_pixels", "--eval", f"ijb={tmp_path / 'IJBC'}",
                 "-o", "ijb.pooling=mean", "--reports", str(tmp_path / "reports")])
    assert code == 0
    (path,) = (tmp_path / "reports").glob("runs/*/results.json")
    res = json.loads(path.read_text())
    names = {m["name"] for m in res["metrics"]}
    assert {"tar_at_far_1e-1", "g1_rank1", "g2_rank1"} <= names
    assert res["protocol"]["pooling"] == "mean" and res["protocol"]["pairs"] == 66  # 12 templates
    assert res["protocol"]["detector"].startswith("none (the release's five landmarks)")
    assert [r["far"] for r in res["sections"]["tar_at_far"]] == list(FAR_TARGETS)
    page = next((tmp_path / "reports").glob("runs/*/index.html")).read_text()
    assert 'id="tar-at-far"' in page and 'id="template-search"' in page
