"""Error-versus-reject curves against brute-force references: dropping the
k lowest-quality genuine pairs, the mean over every order of tied pairs,
the oracle, and the areas by trapezoids."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from harness.metrics import MetricInputError
from harness.metrics.quality import evrc, pair_quality, quality_report, sharpness
from harness.metrics.demographics import global_threshold


def _data(seed=0, n_gen=300, n_imp=3000):
    rng = np.random.default_rng(seed)
    q = rng.random(n_gen + n_imp)
    gen = 2.0 + 2.0 * q[:n_gen] + rng.normal(0, 1, n_gen)  # low quality -> low genuine score
    s = np.r_[gen, rng.normal(0, 1, n_imp)]
    y = np.r_[np.ones(n_gen, bool), np.zeros(n_imp, bool)]
    return s, y, q


def test_no_ties_equals_dropping_the_k_lowest():
    s, y, q = _data()
    e = evrc(s, y, q, threshold=2.5)
    qg, sg = q[y], s[y]
    order = np.argsort(qg)
    for k in (0, 1, 7, 30, 150, 299):
        kept = sg[order[k:]]
        assert e.fnmr[k] == pytest.approx(np.mean(kept < 2.5)), k
        assert e.reject[k] == k / 300


def test_ties_equal_the_mean_over_every_order_of_the_tied_pairs():
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.95, -1.0])
    y = np.array([1, 1, 1, 1, 1, 1, 0], bool)
    q = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 0.0])  # two tie runs
    e = evrc(s, y, q, threshold=0.5)
    gen_s, gen_q = s[y], q[y]
    for k in range(6):
        vals = []
        for perm in itertools.permutations(range(6)):
            order = sorted(range(6), key=lambda i: (gen_q[i], perm[i]))  # a random order within ties
            vals.append(np.mean(gen_s[order[k:]] < 0.5))
        assert e.fnmr[k] == pytest.approx(np.mean(vals)), k


def test_constant_quality_is_flat_at_the_initial_fnmr():
    s, y, _ = _data(1)
    e = evrc(s, y, np.ones(s.size), threshold=2.5)
    assert np.allclose(e.fnmr, e.fnmr[0])
    a = e.area(0.2)
    assert a["auc"] == pytest.approx(a["auc_random"])


def test_quality_equal_to_the_score_is_the_oracle():
    s, y, _ = _data(2)
    e = evrc(s, y, s, threshold=2.5)  # rejects the lowest genuine scores, i.e. the false non-matches, first
    assert np.allclose(e.fnmr, e.oracle)


def test_area_by_trapezoids_and_fnmr_at():
    s, y, q = _data(3)
    e = evrc(s, y, q, fmr_target=1e-2)
    assert e.threshold == global_threshold(s, y, 1e-2)[0]
    a = e.area(0.2)
    r = np.linspace(0, 0.2, 20001)
    assert a["auc"] == pytest.approx(np.trapezoid(np.interp(r, e.reject, e.fnmr), r), rel=1e-4)
    assert a["auc_random"] == pytest.approx(e.fnmr[0] * 0.2)
    assert a["auc_oracle"] <= a["auc"] <= a["auc_random"]  # an informative signal lies between
    assert e.at(0.1) == pytest.approx(e.fnmr[30])


def test_no_errors_and_one_genuine_pair():
    e = evrc([5.0, 6.0, 0.0], [1, 1, 0], [0.2, 0.1, 0.5], threshold=1.0)
    assert np.all(e.fnmr == 0) and e.false_non_matches == 0
    e = evrc([0.5, 0.0], [1, 0], [1.0, 1.0], threshold=1.0)
    assert e.fnmr.tolist() == [1.0] and e.n_genuine == 1


def test_pair_quality_is_the_min_and_unknown_is_lowest():
    got = pair_quality([1.0, np.nan, 3.0], [2.0, 5.0, 1.0])
    assert got.tolist() == [1.0, -np.inf, 1.0]
    with pytest.raises(MetricInputError, match="differ in length"):
        pair_quality([1.0], [1.0, 2.0])


def test_unknown_quality_is_rejected_first_and_counted():
    s = np.array([0.1, 0.9, 0.8, -1.0])
    y = np.array([1, 1, 1, 0], bool)
    e = evrc(s, y, [np.nan, 1.0, 2.0, 0.0], threshold=0.5)
    assert e.unknown == 1 and e.fnmr[1] == 0.0


def test_sharpness_matches_scipy_laplace_on_the_interior():
    rng = np.random.default_rng(0)
    g = rng.random((20, 30))
    ref = ndimage.laplace(g)[1:-1, 1:-1].var()
    assert sharpness(g) == pytest.approx(ref)
    assert sharpness(ndimage.gaussian_filter(g, 2)) < sharpness(g)  # blur lowers it
    with pytest.raises(MetricInputError, match="2-D"):
        sharpness(np.zeros((2, 2)))


def test_quality_report_shape():
    s, y, q = _data(4)
    out = quality_report(s, y, {"q": (q, q), "const": (np.ones(s.size), np.ones(s.size))},
                         descriptions={"q": "planted"}, fmr_target=1e-2)
    sig = out["signals"]["q"]
    assert sig["description"] == "planted" and set(sig["fnmr_at"]) == {"0.01", "0.05", "0.1", "0.2"}
    assert sig["auc"] < out["signals"]["const"]["auc"]  # the planted signal beats a constant one
    assert len(sig["curve"]["reject"]) == len(sig["curve"]["fnmr"])
    with pytest.raises(MetricInputError, match="no genuine"):
        quality_report([0.1, 0.2], [0, 0], {"q": ([1, 1], [1, 1])})


def test_quality_length_mismatch():
    with pytest.raises(MetricInputError, match="one per pair"):
        evrc([0.1, 0.2], [1, 0], [1.0])
