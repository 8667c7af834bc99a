"""Identification, liveness and image metrics against brute force, hand counts and skimage."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics._checks import MetricInputError
from harness.metrics.identification import (
    cmc,
    cmc_from_ranks,
    fnir_at_fpir,
    identity_max,
    mate_ranks,
    open_set_det,
    rank_k,
    tpir_at_fpir,
)
from harness.metrics.image import psnr, ssim
from harness.metrics.liveness import apcer_bpcer_acer, hter, threshold_on_dev


# -- identification ---------------------------------------------------------------
def test_cmc_ties_count_against_the_probe():
    sim = np.array([[0.9, 0.9, 0.1],   # mate tied with an impostor -> rank 2 (bob's rule)
                    [0.2, 0.8, 0.5],   # mate best -> rank 1
                    [0.7, 0.6, 0.5]])  # mate last -> rank 3
    probes = ["a", "b", "c"]
    gallery = ["a", "b", "c"]
    ranks, _ = mate_ranks(sim, probes, gallery)
    np.testing.assert_array_equal(ranks, [2, 1, 3])
    np.testing.assert_allclose(cmc(sim, probes, gallery), [1 / 3, 2 / 3, 1.0])
    assert rank_k(sim, probes, gallery, 1) == pytest.approx(1 / 3)


def test_cmc_matches_brute_force_with_several_gallery_entries_per_id():
    r = np.random.default_rng(0)
    sim = np.round(r.random((40, 25)), 1)
    gallery = r.integers(0, 10, 25)
    probes = r.integers(0, 12, 40)  # some ids have no mate
    out = cmc(sim, probes, gallery, max_rank=5)
    expected = []
    for p in range(40):
        mate = gallery == probes[p]
        if not mate.any():
            continue
        expected.append(1 + np.sum(sim[p, ~mate] >= sim[p, mate].max()))
    expected = np.array(expected)
    np.testing.assert_allclose(out, [(expected <= k).mean() for k in range(1, 6)])
    miss = cmc(sim, probes, gallery, max_rank=5, nonmated="miss")
    np.testing.assert_allclose(miss, out * len(expected) / 40)
    with pytest.raises(MetricInputError, match="have no mate"):
        cmc(sim, probes, gallery, nonmated="error")


def test_tpir_at_fpir_brute_force():
    r = np.random.default_rng(1)
    gallery = np.arange(20)
    probes = np.r_[np.arange(20), np.full(30, 99)]  # 20 mated, 30 non-mated
    sim = np.round(r.random((50, 20)), 2)
    sim[np.arange(20), np.arange(20)] += 0.3
    for target in (1 / 30, 0.1, 0.5, 1.0):
        op = tpir_at_fpir(sim, probes, gallery, target)
        top_nm = sim[20:].max(1)
        best = None
        for t in np.r_[np.unique(np.r_[sim.ravel()]), np.inf]:
            if np.mean(top_nm >= t) <= target:
                ranks = 1 + np.sum((sim[:20] >= sim[np.arange(20), np.arange(20)][:, None]) & ~np.eye(20, dtype=bool), 1)
                tpir = np.mean((ranks <= 1) & (sim[np.arange(20), np.arange(20)] >= t))
                best = tpir if best is None else max(best, tpir)
        assert op.tpir == pytest.approx(best)
        assert op.fpir <= target
    assert not tpir_at_fpir(sim, probes, gallery, 0.01).defined
    with pytest.raises(MetricInputError, match="need both mated and non-mated"):
        tpir_at_fpir(sim[:20], probes[:20], gallery, 0.1)


def _brute_open(sim, probes, gallery, target, rank):
    """FNIR at the lowest threshold with FPIR <= target, by trying every candidate threshold."""
    sim, probes, gallery = np.asarray(sim, float), np.asarray(probes), np.asarray(gallery)
    mated = np.isin(probes, gallery)
    top_nm = sim[~mated].max(1)
    for t in np.r_[np.unique(sim), np.inf]:  # ascending: the first that satisfies is the lowest
        if np.mean(top_nm >= t) <= target:
            misses = 0
            for p in np.flatnonzero(mated):
                m = gallery == probes[p]
                best = sim[p, m].max()
                r = 1 + np.sum(sim[p, ~m] >= best)
                misses += not (r <= rank and best >= t)
            return misses / mated.sum(), np.mean(top_nm >= t)
    raise AssertionError("unreachable: +inf always satisfies the target")


@pytest.mark.parametrize("case", ["ties", "empty_gallery_identity", "random"])
@pytest.mark.parametrize("rank", [1, 3])
def test_fnir_at_fpir_against_brute_force(case, rank):
    r = np.random.default_rng(7)
    gallery = np.array([0, 1, 2, 3, 4])
    if case == "ties":  # coarse scores: mates tie non-mates, non-mated tops tie each other
        sim = np.round(r.random((30, 5)), 1)
        probes = np.r_[r.integers(0, 5, 20), np.full(10, 9)]
    elif case == "empty_gallery_identity":  # probe identity 5 has no gallery entry: its searches are non-mated
        sim = r.random((30, 5))
        probes = np.r_[r.integers(0, 5, 18), np.full(12, 5)]
    else:
        sim = r.random((30, 5))
        probes = np.r_[r.integers(0, 5, 15), np.full(15, 8)]
    ranks, mate = mate_ranks(sim, probes, gallery)
    for target in (0.05, 0.1, 0.25, 0.5, 1.0):
        op = fnir_at_fpir(ranks, mate, sim.max(1), target, rank=rank)
        fnir, fpir = _brute_open(sim, probes, gallery, target, rank)
        assert op.fnir == pytest.approx(fnir) and op.fpir == pytest.approx(fpir)
        assert op.tpir == pytest.approx(tpir_at_fpir(sim, probes, gallery, target, rank=rank).tpir)
    det = open_set_det(ranks, mate, sim.max(1), rank=rank)
    for t, fp, fn in zip(det["threshold"], det["fpir"], det["fnir"]):
        nm = ranks == 0
        assert fp == pytest.approx(np.mean(sim.max(1)[nm] >= t))
        hit = (ranks[~nm] <= rank) & (mate[~nm] >= t)
        assert fn == pytest.approx(1 - hit.mean())
    assert det["fpir"][0] == 0 and det["fnir"][0] == 1 and det["fpir"][-1] == 1.0


def test_open_set_refuses_all_non_mated_or_all_mated_searches():
    with pytest.raises(MetricInputError, match="no probe has a mate"):
        fnir_at_fpir(np.zeros(4, int), np.full(4, np.nan), np.ones(4), 0.1)
    with pytest.raises(MetricInputError, match="every probe has a mate"):
        open_set_det(np.ones(4, int), np.ones(4), np.ones(4))
    with pytest.raises(MetricInputError, match="lengths 3, 4, 4"):
        fnir_at_fpir(np.ones(3, int), np.ones(4), np.ones(4), 0.1)


def test_identity_max_pooling_and_cmc_from_ranks():
    r = np.random.default_rng(3)
    sim = r.random((6, 9))
    gallery = np.array([4, 1, 4, 2, 1, 7, 7, 7, 2])
    pooled, ids = identity_max(sim, gallery)
    assert ids.tolist() == [1, 2, 4, 7]
    for j, i in enumerate(ids):
        np.testing.assert_allclose(pooled[:, j], sim[:, gallery == i].max(1))
    probes = np.array([1, 2, 4, 7, 3, 1])
    ranks, _ = mate_ranks(sim, probes, gallery)
    np.testing.assert_allclose(cmc_from_ranks(ranks, 4), cmc(sim, probes, gallery, max_rank=4))
    np.testing.assert_allclose(cmc_from_ranks(ranks, 4, nonmated_miss=True),
                               cmc(sim, probes, gallery, max_rank=4, nonmated="miss"))


def test_identification_bad_input():
    with pytest.raises(MetricInputError, match="similarity: has shape"):
        cmc(np.zeros(3), [1], [1, 2, 3])
    with pytest.raises(MetricInputError, match="gallery_ids: 2 ids for 3"):
        cmc(np.zeros((1, 3)), [1], [1, 2])
    with pytest.raises(MetricInputError, match="similarity: contains NaN"):
        cmc(np.array([[np.nan]]), [1], [1])
    with pytest.raises(MetricInputError, match="fpir: 0"):
        tpir_at_fpir(np.zeros((2, 2)), [1, 5], [1, 2], 0)


# -- liveness ----------------------------------------------------------------------
def test_apcer_per_species_bpcer_acer_hand_counted():
    scores = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.7, 0.1, 0.55])
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    kinds = ["", "", "", "print", "print", "replay", "replay", "mask"]
    r = apcer_bpcer_acer(scores, labels, kinds, threshold=0.5)
    assert r.apcer_per_species == {"mask": 1.0, "print": 0.5, "replay": 0.5}
    assert (r.apcer, r.worst_species) == (1.0, "mask")
    assert r.bpcer == pytest.approx(1 / 3)
    assert r.acer == pytest.approx((1 + 1 / 3) / 2)
    # attacks pooled: 3 of 5 accepted; 1 of 3 bona fide rejected
    assert hter(scores, labels, 0.5) == pytest.approx((3 / 5 + 1 / 3) / 2)
    pooled = apcer_bpcer_acer(scores, labels, None, threshold=0.5)
    assert pooled.apcer == pytest.approx(3 / 5)


def test_threshold_on_dev_then_test():
    r = np.random.default_rng(4)
    dev_y = np.r_[np.ones(200), np.zeros(300)].astype(int)
    dev_s = r.standard_normal(500) + 2 * dev_y
    t20 = threshold_on_dev(dev_s, dev_y, "bpcer20")
    t10 = threshold_on_dev(dev_s, dev_y, "bpcer10")
    bf = dev_s[dev_y == 1]
    assert np.mean(bf < t20) <= 0.05 and np.mean(bf < np.nextafter(t20, np.inf)) > 0.05
    assert np.mean(bf < t10) <= 0.10 and t10 >= t20
    te = threshold_on_dev(dev_s, dev_y, "eer")
    res = apcer_bpcer_acer(dev_s, dev_y, None, te)
    assert abs(res.apcer - res.bpcer) < 0.02
    with pytest.raises(MetricInputError, match="rule: 'bpcer5'"):
        threshold_on_dev(dev_s, dev_y, "bpcer5")
    with pytest.raises(MetricInputError, match="dev_labels: no genuine"):
        threshold_on_dev(dev_s, np.zeros(500), "eer")
    with pytest.raises(MetricInputError, match="attack_types: 2 entries for 8"):
        apcer_bpcer_acer(np.zeros(8), np.r_[1, np.zeros(7)], ["a", "b"], 0.5)


# -- image ---------------------------------------------------------------------------
def test_psnr_ssim_equal_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    r = np.random.default_rng(0)
    a = r.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + r.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert psnr(a, b) == peak_signal_noise_ratio(a, b, data_range=255)
    assert ssim(a, b) == structural_similarity(a, b, data_range=255, channel_axis=-1)
    assert psnr(a, a) == np.inf
    assert ssim(a[..., 0], a[..., 0]) == pytest.approx(1.0)
    f = a / 255.0
    assert psnr(f, b / 255.0, data_range=1.0) == pytest.approx(psnr(a, b), rel=1e-9)
    with pytest.raises(MetricInputError, match="data_range: needed"):
        psnr(f, f)
    with pytest.raises(MetricInputError, match="differ in shape"):
        ssim(a, b[:10])
    with pytest.raises(MetricInputError, match="smaller than SSIM's 7x7"):
        ssim(a[:5, :5], b[:5, :5])
