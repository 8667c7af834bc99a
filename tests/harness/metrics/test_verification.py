"""Verification metrics against scikit-learn, scipy and hand-counted cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import interpolate
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve

from harness.errors import HarnessError
from harness.metrics._checks import MetricInputError
from harness.metrics.verification import Roc, auc, det, eer, far_frr, roc, tar_at_far

rng = np.random.default_rng(7)

CASES = {
    "ties": (np.array([0.1, 0.5, 0.5, 0.5, 0.9, 0.9, 0.2, 0.5]), np.array([0, 1, 0, 1, 1, 0, 0, 1])),
    "all_equal": (np.full(6, 0.3), np.array([1, 0, 1, 0, 0, 1])),
    "separable": (np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3]), np.array([1, 1, 1, 0, 0, 0])),
    "inverted": (np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3]), np.array([0, 0, 0, 1, 1, 1])),
    "tiny": (np.array([0.4, 0.6]), np.array([1, 0])),
    "rounded": (np.round(rng.standard_normal(500), 1), (rng.random(500) < 0.3).astype(int)),
    "continuous": (rng.standard_normal(2000) + np.r_[np.ones(700), np.zeros(1300)],
                   np.r_[np.ones(700), np.zeros(1300)].astype(int)),
}


@pytest.mark.parametrize("case", CASES)
def test_roc_equals_sklearn_without_dropping(case):
    s, y = CASES[case]
    far, tar, thr = roc(s, y)
    f, t, th = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(far, f)
    np.testing.assert_array_equal(tar, t)
    np.testing.assert_array_equal(thr, th)
    dfar, frr, _ = det(s, y)
    np.testing.assert_allclose(frr, 1 - t, atol=1e-15)


@pytest.mark.parametrize("case", CASES)
def test_auc_equals_sklearn(case):
    s, y = CASES[case]
    assert auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_named_values():
    assert auc(*CASES["separable"]) == 1.0
    assert auc(*CASES["inverted"]) == 0.0
    assert auc(*CASES["all_equal"]) == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=2, max_size=40))
def test_roc_property_against_sklearn(pairs):
    s = np.array([p[0] for p in pairs], dtype=float) / 2
    y = np.array([p[1] for p in pairs])
    if y.all() or not y.any():
        with pytest.raises(MetricInputError):
            roc(s, y)
        return
    far, tar, _ = roc(s, y)
    f, t, _ = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(far, f)
    np.testing.assert_array_equal(tar, t)
    assert auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_far_frr_hand_counted():
    s, y = CASES["ties"]
    # t = 0.5: impostors 0.1, 0.5, 0.9, 0.2 -> 2 accepted of 4; genuine 0.5,0.5,0.9,0.5 -> none rejected
    assert far_frr(s, y, 0.5) == (0.5, 0.0)
    assert far_frr(s, y, 0.50001) == (0.25, 0.75)
    assert far_frr(s, y, np.inf) == (0.0, 1.0)
    assert far_frr(s, y, -np.inf) == (1.0, 0.0)


def _strict_reference(s, y, target):
    f, t, th = roc_curve(y, s, drop_intermediate=False)
    ok = f <= target
    j = np.flatnonzero(ok)[np.argmax(t[ok])]
    return t[j], th[j]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", [1e-6, 1e-3, 0.01, 0.1, 0.25, 0.5, 1.0])
def test_tar_at_far_strict_is_largest_tar_within_target(case, target):
    s, y = CASES[case]
    op = tar_at_far(s, y, target)
    tar_ref, thr_ref = _strict_reference(s, y, target)
    assert op.tar == tar_ref
    assert op.threshold == thr_ref
    assert op.far <= target
    assert op.defined == (target >= 1 / np.count_nonzero(y == 0))


def test_tar_at_far_below_one_impostor_is_flagged():
    s, y = CASES["continuous"]  # 1300 impostors
    assert not tar_at_far(s, y, 1e-4).defined
    assert tar_at_far(s, y, 1 / 1300).defined
    op = tar_at_far(*CASES["separable"], far=0.1)  # 3 impostors
    assert not op.defined and op.tar == 1.0  # FAR 0 is reached with every genuine accepted


def _insightface_nearest(s, y, target):
    """insightface recognition/_evaluation_/ijb: flip the sklearn ROC, min over (distance, index)."""
    fpr, tpr, _ = roc_curve(y, s)
    fpr, tpr = np.flipud(fpr), np.flipud(tpr)
    _, i = min(zip(abs(fpr - target), range(len(fpr))))
    return tpr[i], fpr[i]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("target", [1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5])
def test_tar_at_far_nearest_reproduces_insightface(case, target):
    s, y = CASES[case]
    op = tar_at_far(s, y, target, rule="nearest")
    tar_ref, far_ref = _insightface_nearest(s, y, target)
    assert (op.tar, op.far) == (tar_ref, far_ref)


def test_nearest_may_exceed_target_and_prefers_highest_tar_on_equal_distance():
    # impostor scores 0.1..0.4 -> FPR steps of 0.25; target 0.125 is equidistant from 0 and 0.25
    s = np.array([0.4, 0.3, 0.2, 0.1, 0.35, 0.05])
    y = np.array([0, 0, 0, 0, 1, 1])
    op = tar_at_far(s, y, 0.125, rule="nearest")
    assert op.far == 0.25 and op.far > 0.125
    assert (op.tar, op.far) == _insightface_nearest(s, y, 0.125)


def _facenet_eer(s, y):
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return brentq(lambda x: 1.0 - x - interpolate.interp1d(fpr, tpr)(x), 0.0, 1.0)


@pytest.mark.parametrize("case", ["continuous", "tiny", "separable", "inverted"])
def test_eer_interpolated_matches_facenet_brentq(case):
    s, y = CASES[case]
    value, thr = eer(s, y)
    assert value == pytest.approx(_facenet_eer(s, y), abs=1e-9)


def test_eer_named_values_and_threshold():
    assert eer(*CASES["separable"])[0] == 0.0
    assert eer(*CASES["inverted"])[0] == 1.0
    assert eer(*CASES["all_equal"])[0] == pytest.approx(0.5)
    s, y = CASES["continuous"]
    value, thr = eer(s, y)
    fa, fr = far_frr(s, y, thr)
    assert abs(fa - value) < 0.01 and abs(fr - value) < 0.01


def _bosaris_rocch_eer(s, y):
    """Hand transcription of BOSARIS rocch + rocch2eer: hull of (pfa, pmiss) by brute force."""
    f, t, _ = roc_curve(y, s, drop_intermediate=False)
    pts = sorted(set(zip(f.tolist(), (1 - t).tolist())))
    hull = []  # lower convex hull (Andrew's monotone chain)
    for p in pts:
        while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                  - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) <= 0:
            hull.pop()
        hull.append(p)
    best = 0.0
    for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
        if x1 == x2 or y1 == y2:
            continue
        a, b = np.linalg.solve([[x1, y1], [x2, y2]], [1.0, 1.0])
        best = max(best, 1.0 / (a + b))
    return best


@pytest.mark.parametrize("case", CASES)
def test_eer_rocch_matches_bosaris_definition(case):
    s, y = CASES[case]
    assert eer(s, y, method="rocch")[0] == pytest.approx(_bosaris_rocch_eer(s, y), abs=1e-12)


def test_eer_rocch_is_at_most_interpolated():
    s, y = CASES["continuous"]
    assert eer(s, y, "rocch")[0] <= eer(s, y)[0] + 1e-12


@pytest.mark.parametrize(
    "scores, labels, far, fragment",
    [
        ([0.1, np.nan, 0.3], [0, 1, 1], 0.1, "scores: 1 value(s) are NaN"),
        ([0.1, np.inf, 0.3], [0, 1, 1], 0.1, "NaN or infinite"),
        ([0.1, 0.2], [0, 1, 1], 0.1, "differ in length"),
        ([0.1, 0.2, 0.3], [0, 1, 2], 0.1, "labels: values must be 0 or 1"),
        ([0.1, 0.2, 0.3], [1, 1, 1], 0.1, "no impostor"),
        ([0.1, 0.2, 0.3], [0, 0, 0], 0.1, "no genuine"),
        ([0.1, 0.2, 0.3], [0, 1, 1], 0.0, "far: 0.0 is outside (0, 1]"),
        ([0.1, 0.2, 0.3], [0, 1, 1], 1.5, "far: 1.5 is outside"),
        ([0.1, 0.2, 0.3], [0, 1, 1], float("nan"), "far: nan"),
        ([], [], 0.1, "no genuine"),
    ],
)
def test_bad_input_raises_clear_error(scores, labels, far, fragment):
    with pytest.raises(MetricInputError, match=None) as exc:
        tar_at_far(scores, labels, far)
    assert fragment in str(exc.value)
    assert isinstance(exc.value, HarnessError) and isinstance(exc.value, ValueError)


def test_unknown_rule_and_method():
    s, y = CASES["tiny"]
    with pytest.raises(MetricInputError, match="rule: 'loose'"):
        tar_at_far(s, y, 0.1, rule="loose")
    with pytest.raises(MetricInputError, match="method: 'hull'"):
        eer(s, y, method="hull")
    with pytest.raises(MetricInputError, match="threshold: is NaN"):
        far_frr(s, y, float("nan"))


def test_from_classes_matches_labelled_form():
    s, y = CASES["rounded"]
    a = Roc(s, y)
    b = Roc.from_classes(s[y == 1], s[y == 0])
    np.testing.assert_array_equal(a.tp, b.tp)
    np.testing.assert_array_equal(a.fp, b.fp)
    with pytest.raises(MetricInputError, match="impostor: is empty"):
        Roc.from_classes([1.0], [])


def test_large_input_matches_sklearn():
    r = np.random.default_rng(3)
    y = r.random(200_000) < 0.1
    s = np.round(r.standard_normal(y.size) + 2 * y, 3)  # many ties
    R = Roc(s, y)
    f, t, th = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(R.far, f)
    np.testing.assert_array_equal(R.tar, t)
    assert R.auc() == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    for target in (1e-5, 1e-4, 1e-3, 1e-2):
        assert R.tar_at_far(target, "nearest").tar == _insightface_nearest(s, y, target)[0]


# -- the argsort-free core: counts per distinct score ---------------------------
def _imbalanced(minority_genuine):
    r = np.random.default_rng(11)
    y = r.random(3000) < (0.03 if minority_genuine else 0.97)
    s = np.round(r.standard_normal(y.size) + 1.5 * y, 2)
    return s, y


@pytest.mark.parametrize("minority_genuine", [True, False], ids=["few_genuine", "few_impostor"])
def test_either_class_may_be_the_smaller_one(minority_genuine):
    s, y = _imbalanced(minority_genuine)
    R = Roc(s, y)
    f, t, th = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_array_equal(R.far, f)
    np.testing.assert_array_equal(R.tar, t)
    np.testing.assert_array_equal(R.thresholds, th)
    b = Roc.from_classes(s[y], s[~y])
    np.testing.assert_array_equal(b.tp, R.tp)
    np.testing.assert_array_equal(b.fp, R.fp)
    assert R.eer("rocch")[0] == pytest.approx(_bosaris_rocch_eer(s, y), abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_sklearn_kept_points_are_reproduced(case):
    s, y = CASES[case]
    fps, tps, thr, fpr = Roc(s, y)._sklearn_points()
    f, t, th = roc_curve(y, s)  # drop_intermediate=True
    np.testing.assert_array_equal(fpr, f)
    np.testing.assert_array_equal(tps / np.count_nonzero(y), t)
    np.testing.assert_array_equal(thr, th)


def test_all_ties_every_metric():
    s = np.full(9, -0.25)
    y = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0])
    R = Roc(s, y)
    assert list(R.thresholds) == [np.inf, -0.25]
    assert list(R.tp) == [0, 3] and list(R.fp) == [0, 6]
    assert R.auc() == 0.5 == roc_auc_score(y, s)
    assert R.eer() == (pytest.approx(0.5), -0.25)
    assert R.eer("rocch")[0] == pytest.approx(_bosaris_rocch_eer(s, y), abs=1e-12)
    op = R.tar_at_far(0.5)
    assert (op.tar, op.far, op.threshold) == (0.0, 0.0, np.inf)  # FAR jumps 0 -> 1
    assert (R.tar_at_far(1.0).tar, R.tar_at_far(1.0).threshold) == (1.0, -0.25)
    for target in (0.4, 0.5, 0.6):
        near = R.tar_at_far(target, "nearest")
        assert (near.tar, near.far) == _insightface_nearest(s, y, target)


@pytest.mark.parametrize("genuine, impostor, fragment", [
    ([], [0.1, 0.2], "genuine: is empty"),
    ([0.3], [], "impostor: is empty"),
    ([0.3, np.nan], [0.1], "genuine: 1 value(s) are NaN"),
    ([0.3], [0.1, -np.inf, np.nan], "impostor: 2 value(s) are NaN or infinite"),
])
def test_from_classes_rejects_one_class_and_nan(genuine, impostor, fragment):
    with pytest.raises(MetricInputError) as exc:
        Roc.from_classes(genuine, impostor)
    assert fragment in str(exc.value)


@pytest.mark.parametrize("labels, fragment", [([1, 1, 1, 1], "no impostor"), ([0, 0, 0, 0], "no genuine")])
def test_one_class_rejected_by_every_function(labels, fragment):
    s = [0.2, 0.4, 0.4, 0.9]
    for fn in (roc, det, auc, eer):
        with pytest.raises(MetricInputError, match=fragment):
            fn(s, labels)


def _brute_eer_threshold(s, y):
    f, t, th = roc_curve(y, s, drop_intermediate=False)
    ng, ni = int(np.sum(y)), int(np.size(y) - np.sum(y))
    fp, fn = np.rint(f * ni).astype(np.int64), np.rint((1 - t) * ng).astype(np.int64)
    return th[1:][int(np.argmin(np.abs(fp[1:] * ng - fn[1:] * ni)))]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(-4, 4), st.booleans()), min_size=2, max_size=60),
       st.floats(1e-4, 1.0))
def test_bisections_match_full_scans(pairs, target):
    """The O(log n) searches (nearest FPR, EER threshold) equal argmin over every point."""
    s = np.array([p[0] for p in pairs], dtype=float) / 4
    y = np.array([p[1] for p in pairs])
    if y.all() or not y.any():
        return
    R = Roc(s, y)
    near = R.tar_at_far(target, "nearest")
    assert (near.tar, near.far) == _insightface_nearest(s, y, target)
    assert R.eer()[1] == _brute_eer_threshold(s, y)
    assert R.eer()[0] == pytest.approx(_facenet_eer(s, y), abs=1e-9)
    assert R.eer("rocch")[0] == pytest.approx(_bosaris_rocch_eer(s, y), abs=1e-12)


def test_cached_curves_are_not_handed_out():
    s, y = CASES["rounded"]
    R = Roc(s, y)
    before = R.tar_at_far(0.1)
    R.far[:] = 0.0  # a caller writing into its copy
    assert R.tar_at_far(0.1) == before


@pytest.mark.parametrize("layout", ["blocks", "interleaved"])
def test_nearest_on_long_straight_runs_of_the_curve(layout):
    """sklearn drops the inner points of straight runs (thousands of equal steps
    here, far beyond the first 64-point search window); nearest must skip them."""
    if layout == "blocks":  # 1,500 impostors, then 500 genuine and 500 impostors: three straight runs
        s = np.r_[np.arange(1500, 2000.0), np.arange(1500.0), np.arange(2000, 2500.0)]
        y = np.r_[np.ones(500, int), np.zeros(1500, int), np.zeros(500, int)]
    else:  # genuine and impostor alternate: a staircase whose steps repeat
        s = np.r_[np.arange(3000) * 2.0 + 1, np.arange(3000) * 2.0]
        y = np.r_[np.ones(3000, int), np.zeros(3000, int)]
    R = Roc(s, y)
    for target in (1e-4, 0.01, 0.1, 0.2, 0.2 + 1 / 4000, 1 / 3, 0.5, 0.777, 0.9, 1.0):
        op = R.tar_at_far(target, "nearest")
        assert (op.tar, op.far) == _insightface_nearest(s, y, target), target
