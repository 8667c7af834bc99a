"""The LFW k-fold protocol against transcriptions of the published loops
(insightface arcface_torch eval/verification.py, davidsandberg/facenet
src/lfw.py) and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import interpolate
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

from harness.metrics._checks import MetricInputError
from harness.metrics.lfw import (
    _slinear,
    contiguous_folds,
    kfold_accuracy,
    kfold_accuracy_from_scores,
    val_at_far,
)

from tests.conftest import need_data


# -- reference loops, written from the published code's behaviour ----------------
def _ref_accuracy(threshold, dist, issame):
    pred = np.less(dist, threshold)
    tp = np.sum(np.logical_and(pred, issame))
    tn = np.sum(np.logical_and(np.logical_not(pred), np.logical_not(issame)))
    return float(tp + tn) / dist.size


def _ref_val_far(threshold, dist, issame):
    pred = np.less(dist, threshold)
    ta = np.sum(np.logical_and(pred, issame))
    fa = np.sum(np.logical_and(pred, np.logical_not(issame)))
    return float(ta) / float(np.sum(issame)), float(fa) / float(np.sum(np.logical_not(issame)))


def _ref_distance(e1, e2, metric):
    if metric == 0:
        return np.sum(np.square(e1 - e2), 1)
    dot = np.sum(np.multiply(e1, e2), axis=1)
    norm = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
    return np.arccos(dot / norm) / math.pi


def _ref_roc(e1, e2, issame, nfolds=10, metric=0, subtract_mean=False):
    thresholds = np.arange(0, 4, 0.01)
    acc = np.zeros(nfolds)
    best = np.zeros(nfolds)
    for k, (train, test) in enumerate(KFold(n_splits=nfolds, shuffle=False).split(np.arange(len(issame)))):
        mean = np.mean(np.concatenate([e1[train], e2[train]]), axis=0) if subtract_mean else 0.0
        dist = _ref_distance(e1 - mean, e2 - mean, metric)
        acc_train = np.array([_ref_accuracy(t, dist[train], issame[train]) for t in thresholds])
        bi = np.argmax(acc_train)
        acc[k] = _ref_accuracy(thresholds[bi], dist[test], issame[test])
        best[k] = thresholds[bi]
    return acc, best


def _ref_val(e1, e2, issame, far_target=1e-3, nfolds=10, metric=0):
    thresholds = np.arange(0, 4, 0.001)
    val = np.zeros(nfolds)
    far = np.zeros(nfolds)
    dist = _ref_distance(e1, e2, metric)
    for k, (train, test) in enumerate(KFold(n_splits=nfolds, shuffle=False).split(np.arange(len(issame)))):
        far_train = np.array([_ref_val_far(t, dist[train], issame[train])[1] for t in thresholds])
        if np.max(far_train) >= far_target:
            threshold = _old_slinear(far_train, thresholds, far_target)
        else:
            threshold = 0.0
        val[k], far[k] = _ref_val_far(threshold, dist[test], issame[test])
    return np.mean(val), np.std(val), np.mean(far)


def _old_slinear(x, y, at):
    """interp1d(kind="slinear") before SciPy rejected repeated x: linear between
    the last point with x <= at and the next one."""
    i = min(np.searchsorted(x, at, side="right") - 1, len(x) - 2)
    if x[i + 1] == x[i]:
        return y[i + 1]
    return y[i] + (y[i + 1] - y[i]) * (at - x[i]) / (x[i + 1] - x[i])


def test_old_slinear_matches_interp1d_without_repeats():
    x = np.array([0.0, 0.1, 0.35, 0.6, 1.0])
    y = np.array([0.0, 1.0, 2.0, 4.0, 5.0])
    for at in (0.0, 0.05, 0.1, 0.2, 0.6, 0.99, 1.0):
        assert _old_slinear(x, y, at) == pytest.approx(float(interpolate.interp1d(x, y, kind="slinear")(at)))
        assert _slinear(x, y, at) == pytest.approx(float(interpolate.interp1d(x, y, kind="slinear")(at)))
    xr = np.array([0.0, 0.0, 0.1, 0.1, 0.1, 0.5, 1.0, 1.0])
    yr = np.arange(8.0)
    for at in (0.0, 0.05, 0.1, 0.3, 0.5, 0.75):  # not the repeated end point (a spline quirk)
        assert _slinear(xr, yr, at) == pytest.approx(_old_slinear(xr, yr, at), abs=1e-12)


def _pairs(n=600, dim=16, seed=0, noise=0.9):
    r = np.random.default_rng(seed)
    issame = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], n // 60)
    a = r.standard_normal((n, dim))
    b = np.where(issame[:, None], a + noise * r.standard_normal((n, dim)), r.standard_normal((n, dim)))
    return a, b, issame


# -- insightface ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_insightface_accuracy_reproduced_exactly(seed):
    a, b, same = _pairs(seed=seed)
    fa, fb = a + 0.1, b - 0.1  # "flipped" embeddings
    res = kfold_accuracy(a, b, same, flip1=fa, flip2=fb)
    e1, e2 = normalize(a + fa), normalize(b + fb)
    acc, best = _ref_roc(e1, e2, same)
    np.testing.assert_array_equal(res.accuracies, acc)
    np.testing.assert_array_equal(res.thresholds, best)
    assert res.mean == np.mean(acc) and res.std == np.std(acc)


def test_insightface_val_reproduced_exactly():
    a, b, same = _pairs(n=1200, seed=3)
    res = val_at_far(a, b, same, far=1e-2)
    ref = _ref_val(normalize(a), normalize(b), same, far_target=1e-2)
    assert (res.val, res.val_std, res.far) == pytest.approx(ref, abs=0)


def test_uneven_folds_follow_kfold():
    a, b, same = _pairs(n=600)
    a, b, same = a[:597], b[:597], same[:597]
    ids = contiguous_folds(597, 10)
    for k, (_, test) in enumerate(KFold(10).split(np.arange(597))):
        np.testing.assert_array_equal(np.flatnonzero(ids == k), test)
    res = kfold_accuracy(a, b, same)
    np.testing.assert_array_equal(res.accuracies, _ref_roc(normalize(a), normalize(b), same)[0])


# -- facenet -------------------------------------------------------------------------
@pytest.mark.parametrize("distance, metric", [("euclidean", 0), ("cosine", 1)])
@pytest.mark.parametrize("subtract_mean", [False, True])
def test_facenet_reproduced_exactly(distance, metric, subtract_mean):
    a, b, same = _pairs(seed=5, dim=8)
    fa, fb = -a, b * 0.5
    res = kfold_accuracy(a, b, same, convention="facenet", distance=distance,
                         subtract_mean=subtract_mean, flip1=fa, flip2=fb)
    e1, e2 = np.concatenate([a, fa], 1), np.concatenate([b, fb], 1)  # flip-concat
    acc, best = _ref_roc(e1, e2, same, metric=metric, subtract_mean=subtract_mean)
    np.testing.assert_array_equal(res.accuracies, acc)
    np.testing.assert_array_equal(res.thresholds, best)


def test_facenet_val_cosine():
    a, b, same = _pairs(n=1200, seed=9, dim=8)
    res = val_at_far(a, b, same, far=1e-2, convention="facenet", distance="cosine")
    assert (res.val, res.val_std, res.far) == pytest.approx(_ref_val(a, b, same, 1e-2, metric=1), abs=0)


# -- exact mode ------------------------------------------------------------------------
def test_exact_mode_is_best_over_every_threshold():
    a, b, same = _pairs(seed=11, noise=1.4)
    res = kfold_accuracy(a, b, same, exact=True)
    grid = kfold_accuracy(a, b, same)
    e1, e2 = normalize(a), normalize(b)
    d = np.sum((e1 - e2) ** 2, 1)
    ids = contiguous_folds(len(d), 10)
    for k in range(10):
        tr = ids != k
        u = np.unique(d[tr])
        cands = np.r_[u[0], (u[:-1] + u[1:]) / 2, u[-1] + 1]
        accs = [_ref_accuracy(t, d[tr], same[tr]) for t in cands]
        t_best = cands[int(np.argmax(accs))]
        assert _ref_accuracy(res.thresholds[k], d[tr], same[tr]) == max(accs)
        assert res.accuracies[k] == _ref_accuracy(t_best, d[~tr], same[~tr])
        # the grid can never beat the exact search on the training folds
        assert _ref_accuracy(grid.thresholds[k], d[tr], same[tr]) <= max(accs)


# -- from scores ------------------------------------------------------------------------
def _brute_scores(s, y, f, tie):
    accs, thrs = [], []
    for k in np.unique(f):
        tr = f != k
        u = np.unique(s[tr])
        cands = np.r_[u[0], (u[:-1] + u[1:]) / 2, np.nextafter(u[-1], np.inf)]
        correct = np.array([np.sum((s[tr] >= t) == y[tr]) for t in cands])
        best = np.flatnonzero(correct == correct.max())
        j = {"highest": best[-1], "lowest": best[0], "middle": best[(len(best) - 1) // 2]}[tie]
        thrs.append(cands[j])
        accs.append(np.mean((s[~tr] >= cands[j]) == y[~tr]))
    return np.array(accs), np.array(thrs)


@pytest.mark.parametrize("tie", ["highest", "lowest", "middle"])
def test_scores_kfold_matches_brute_force(tie):
    r = np.random.default_rng(2)
    y = np.tile(np.r_[np.ones(30, bool), np.zeros(30, bool)], 10)
    s = np.round(r.standard_normal(600) + 1.5 * y, 1)  # ties on purpose
    f = np.repeat(np.arange(10), 60)
    res = kfold_accuracy_from_scores(s, y, f, tie=tie)
    acc, thr = _brute_scores(s, y, f, tie)
    np.testing.assert_allclose(res.accuracies, acc, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(res.thresholds, thr)
    assert res.std == pytest.approx(np.std(acc), abs=1e-15)


def test_scores_kfold_named_cases():
    f = np.repeat([0, 1], 4)
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    sep = kfold_accuracy_from_scores([0.9, 0.8, 0.1, 0.2, 0.7, 0.95, 0.3, 0.05], y, f)
    assert sep.mean == 1.0 and sep.std == 0.0
    inv = kfold_accuracy_from_scores([0.1, 0.2, 0.9, 0.8, 0.05, 0.3, 0.7, 0.95], y, f)
    # training accuracy ties between accept-all and reject-all; "highest" rejects all:
    # fold 0's test pairs are then half right; fold 1's impostor 0.95 is above 0.9 -> 1 of 4
    np.testing.assert_array_equal(inv.accuracies, [0.5, 0.25])
    flat = kfold_accuracy_from_scores(np.zeros(8), y, f)
    assert flat.mean == 0.5
    with pytest.raises(MetricInputError, match="folds: 1 distinct fold"):
        kfold_accuracy_from_scores([0.1, 0.2], [0, 1], [0, 0])
    with pytest.raises(MetricInputError, match="differ in length"):
        kfold_accuracy_from_scores([0.1, 0.2], [0, 1], [0, 1, 1])
    with pytest.raises(MetricInputError, match="tie: 'first'"):
        kfold_accuracy_from_scores([0.1, 0.2], [0, 1], [0, 1], tie="first")


def test_lfw_view2_folds_from_pairs_txt():
    """The real LFW View 2 layout: 10 folds of 300 same + 300 different pairs."""
    path = need_data("lfw_home/pairs.txt")
    lines = path.read_text().split("\n")
    n_folds, n_per = map(int, lines[0].split())
    same, fold = [], []
    for i, line in enumerate(l for l in lines[1:] if l.strip()):
        parts = line.split()
        same.append(len(parts) == 3)
        fold.append(i // (2 * n_per))
    same, fold = np.array(same), np.array(fold)
    assert (n_folds, len(same)) == (10, 6000)
    assert all(np.sum(same[fold == k]) == 300 for k in range(10))
    # a scorer that is right on all but 1 pair per fold
    r = np.random.default_rng(0)
    s = np.where(same, 1.0, 0.0) + 0.1 * r.random(6000)
    flip = np.flatnonzero(np.diff(np.r_[-1, fold]))  # first pair of each fold
    s[flip] = 1.05 - s[flip] + 0.0  # make the first (genuine) pair of each fold look impostor
    res = kfold_accuracy_from_scores(s, same, fold)
    np.testing.assert_allclose(res.accuracies, 599 / 600)
    assert len(res.folds) == 10 and res.std == pytest.approx(0.0, abs=1e-15)


def test_bad_embeddings():
    a, b, same = _pairs(n=60)
    with pytest.raises(MetricInputError, match="emb1 and emb2 differ in shape"):
        kfold_accuracy(a, b[:, :3], same)
    with pytest.raises(MetricInputError, match="issame has 59 entries"):
        kfold_accuracy(a, b, same[:59])
    bad = a.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MetricInputError, match="emb1: contains NaN"):
        kfold_accuracy(bad, b, same)
    with pytest.raises(MetricInputError, match="convention: 'bob'"):
        kfold_accuracy(a, b, same, convention="bob")
    with pytest.raises(MetricInputError, match="flip1 / flip2"):
        kfold_accuracy(a, b, same, flip1=a)
    with pytest.raises(MetricInputError, match="far: 2"):
        val_at_far(a, b, same, far=2)
    with pytest.raises(MetricInputError, match="n_folds: 100 folds need"):
        kfold_accuracy(a, b, same, n_folds=100)
