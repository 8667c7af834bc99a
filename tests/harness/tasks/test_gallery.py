"""Failure galleries, quality signals and --groups differentials kept by a
verification run (harness/tasks/_gallery.py), on a small evaluation set
built in memory."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import numpy as np
import pytest

from harness.errors import DataError
from harness.tasks import _gallery as G
from harness.types import ImageSet, PairSet

pytest.importorskip("cv2", reason="thumbnails are JPEG-encoded with OpenCV (pip install 'facebench[cv]')")


def _eval_set(n_ids=12, per_id=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per_id)
    keys = [f"/data/lfw/P{lab:02d}/P{lab:02d}_{i % per_id + 1:04d}.jpg" for i, lab in enumerate(labels)]
    images = ImageSet(keys, labels, loader=lambda k: np.zeros((8, 8, 3), np.uint8),
                      identities=[f"P{i:02d}" for i in range(n_ids)])
    gen = [(i * per_id, i * per_id + 1) for i in range(n_ids)] + [(i * per_id + 2, i * per_id + 3) for i in range(n_ids)]
    imp = [(i * per_id, ((i + 1) % n_ids) * per_id + 2) for i in range(n_ids)] + \
          [(i * per_id + 1, ((i + 3) % n_ids) * per_id + 3) for i in range(n_ids)]
    pairs = np.array(gen + imp)
    issame = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    ps = PairSet(images, pairs, issame, np.zeros(len(pairs), np.int64))
    uniq = np.unique(pairs.ravel())
    crops = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in uniq]
    fallback = np.zeros(len(uniq), bool)
    fallback[[3, 7]] = True
    ev = SimpleNamespace(pairs=ps, uniq=uniq, crops=crops, fallback=fallback, detector=None,
                         ref=SimpleNamespace(name="toy"))
    ev.rows = lambda: tuple(np.searchsorted(uniq, pairs).T)
    scores = np.where(issame, rng.normal(0.7, 0.15, len(pairs)), rng.normal(0.3, 0.15, len(pairs)))
    return ev, scores


def test_gallery_holds_the_hardest_errors_in_order_as_jpeg_thumbnails():
    import cv2

    ev, scores = _eval_set()
    g = G.failure_gallery(ev, scores, n=3)
    t = g["threshold"]
    y = ev.pairs.issame
    fa = np.sort(scores[~y & (scores >= t)])[::-1]
    fr = np.sort(scores[y & (scores < t)])
    assert [p["score"] for p in g["false_accepts"]] == pytest.approx(fa[:3].tolist())
    assert [p["score"] for p in g["false_rejects"]] == pytest.approx(fr[:3].tolist())
    assert g["counts"]["false_accepts"] == fa.size and g["counts"]["false_rejects"] == fr.size
    img = g["false_accepts"][0]["a"]
    assert img["file"].count("/") == 1 and img["file"].endswith(".jpg")
    head, data = img["uri"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == G.THUMB_PX
    assert [f["fallback"] for f in g["fallbacks"]] == [True, True] and g["counts"]["fallback_images"] == 2


def test_gallery_respects_its_size_cap():
    ev, scores = _eval_set()
    one = len(G.thumbnail_uri(ev.crops[0]))
    g = G.failure_gallery(ev, scores, n=8, max_bytes=int(one * 3.5))
    shown = {p[k]["uri"] for p in g["false_accepts"] + g["false_rejects"] for k in "ab"} | \
        {f["uri"] for f in g["fallbacks"]}
    assert g["truncated"] and g["bytes"] <= one * 3.5 and len(shown) <= 3


@pytest.mark.parametrize("n_imp, target", [(300, 1e-1), (3000, 1e-2), (10_000, 1e-3), (1_000_000, 1e-3), (5, 1.0)],
                         ids=["lfw-one-fold", "lfw-view2", "exact-10", "large", "tiny"])
def test_evidence_fmr_target_leaves_room_for_ten_false_matches(n_imp, target):
    assert G.evidence_fmr_target(n_imp) == pytest.approx(target)


def test_quality_signals():
    ev, _ = _eval_set()
    unit = np.random.default_rng(1).normal(size=(len(ev.uniq), 16))
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    sig, desc, missing = G.quality_signals(ev, unit)
    assert "embedding_norm" not in sig and any("unit length" in m for m in missing)
    assert "face_size" not in sig and set(desc) == set(sig) == {"sharpness"}
    boxes = np.tile([[0.0, 0.0, 40.0, 60.0]], (len(ev.uniq), 1))
    boxes[2] = np.nan
    sig, _, _ = G.quality_signals(ev, unit * np.arange(1, len(ev.uniq) + 1)[:, None], boxes)
    assert sig["face_size"][0] == 40.0 and sig["face_size"][2] == 0.0  # no face found: lowest
    assert sig["embedding_norm"] == pytest.approx(np.arange(1, len(ev.uniq) + 1))


def _ctx_spec(tmp_path, groups=None):
    ctx = SimpleNamespace(cache_dir=tmp_path, log=lambda m: None)
    spec = SimpleNamespace(groups=groups, seed=0, options={},
                           intervals=SimpleNamespace(bootstrap=100, level=0.95, seed=None))
    return ctx, spec


def test_run_evidence_with_a_groups_file(tmp_path):
    ev, scores = _eval_set()
    f = tmp_path / "groups.csv"
    f.write_text("identity,sex\n" + "".join(f"P{i:02d},{'fm'[i % 2]}\n" for i in range(12)))
    out = G.run_evidence(*_ctx_spec(tmp_path, str(f)), ev, scores, None)
    assert set(out) == {"failure_gallery", "quality", "demographics"}
    dm = out["demographics"]
    assert set(dm["attributes"]["sex"]["groups"][0]) >= {"group", "fmr", "fnmr", "fmr_ci", "fnmr_ci"}
    assert dm["attributes"]["sex"]["ci"]["unit"] == "subjects" and dm["attributes"]["sex"]["ci"]["B"] == 100
    assert dm["matched"] == {"images": len(ev.uniq), "of": len(ev.uniq)} and len(dm["sha256"]) == 16
    assert set(out["quality"]["signals"]) == {"sharpness"}


def test_run_evidence_groups_file_that_matches_nothing(tmp_path):
    ev, scores = _eval_set()
    f = tmp_path / "groups.csv"
    f.write_text("identity,sex\nSomeone_Else,f\n")
    with pytest.raises(DataError, match="no identity in the file matches") as err:
        G.run_evidence(*_ctx_spec(tmp_path, str(f)), ev, scores, None)
    assert "\n" not in str(err.value)


def test_run_evidence_without_groups_and_with_one_class(tmp_path):
    ev, scores = _eval_set()
    out = G.run_evidence(*_ctx_spec(tmp_path), ev, scores, None)
    assert "demographics" not in out and "failure_gallery" in out
    ev.pairs.issame[:] = True
    assert G.run_evidence(*_ctx_spec(tmp_path), ev, scores, None) == {}


def test_liveness_gallery_orders_the_worst_presentations():
    rng = np.random.default_rng(3)
    n = 30
    labels = (np.arange(n) % 3 != 0).astype(np.int64)  # 1 = bona fide
    scores = rng.random(n)
    crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(n)]
    record = SimpleNamespace(images=SimpleNamespace(load=lambda i: crops[i]))
    part = SimpleNamespace(inputs=[(i,) for i in range(n)], idx=np.arange(n), record=record, labels=labels,
                           species=np.where(labels == 1, "", "print"), fallback=np.zeros(n, bool),
                           keys=[f"/s/test/{i}.png" for i in range(n)])  # a full-image model: images loaded
    g = G.liveness_gallery(part, scores, 0.5, n=4)
    att = np.sort(scores[labels == 0])[::-1][:4]
    bona = np.sort(scores[labels == 1])[:4]
    assert [a["score"] for a in g["attacks"]] == pytest.approx(att.tolist())
    assert [b["score"] for b in g["bona_fide"]] == pytest.approx(bona.tolist())
    assert all(a["accepted"] == (a["score"] >= 0.5) and a["species"] == "print" for a in g["attacks"])
    assert g["counts"]["attacks_accepted"] == int(np.sum((labels == 0) & (scores >= 0.5)))
    assert g["attacks"][0]["uri"].startswith("data:image/jpeg;base64,") and g["kind"] == "liveness"
