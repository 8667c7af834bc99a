"""The LFW-style k-fold verification protocol.

Three entry points:

* :func:`kfold_accuracy` — from embeddings, reproducing insightface
  (``recognition/arcface_torch/eval/verification.py``) or davidsandberg/facenet
  (``src/lfw.py``) exactly: distances, the 0.01 threshold grid, contiguous
  folds, the first best training threshold, population std.  ``exact=True``
  replaces the grid by every midpoint between distinct training distances.
* :func:`val_at_far` — VAL@FAR as both projects compute it (thresholds on a
  0.001 grid, the training-fold threshold interpolated as
  ``scipy.interpolate.interp1d(kind="slinear")`` did, see :func:`_slinear`).
* :func:`kfold_accuracy_from_scores` — precomputed similarity scores with
  explicit fold ids (LFW View 2: 10 folds of 600 from ``pairs.txt``); the
  threshold is chosen on the other folds over every midpoint between distinct
  scores.

Distances here are "same" when ``distance < threshold`` (the published
code's rule); similarity scores are "same" when ``score >= threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.metrics._checks import MetricInputError, as_labels, as_scores, check_rate

__all__ = [
    "KFoldResult",
    "ValResult",
    "contiguous_folds",
    "kfold_accuracy",
    "kfold_accuracy_from_scores",
    "pair_distances",
    "val_at_far",
]

CONVENTIONS = ("insightface", "facenet")
DISTANCES = ("euclidean", "cosine")
TIE_RULES = ("highest", "lowest", "middle")


@dataclass(frozen=True)
class KFoldResult:
    """Per-fold accuracies and the thresholds chosen on the other folds.

    :param mean: mean of ``accuracies``.
    :param std: population standard deviation (``numpy.std``, ddof 0).
    :param accuracies: (K,) accuracy on each test fold.
    :param thresholds: (K,) threshold chosen on the other K-1 folds.
    :param folds: (K,) fold ids in the order of the arrays.
    :param convention: how it was computed.
    """

    mean: float
    std: float
    accuracies: np.ndarray
    thresholds: np.ndarray
    folds: np.ndarray
    convention: str = ""
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "std": self.std,
            "convention": self.convention,
            "folds": [
                {"fold": int(f), "accuracy": float(a), "threshold": float(t)}
                for f, a, t in zip(self.folds, self.accuracies, self.thresholds)
            ],
        }


@dataclass(frozen=True)
class ValResult:
    """VAL (TAR) at a FAR target over folds: mean, population std, mean FAR reached."""

    val: float
    val_std: float
    far: float
    vals: np.ndarray
    fars: np.ndarray
    thresholds: np.ndarray


def contiguous_folds(n: int, n_folds: int) -> np.ndarray:
    """Fold id per index as ``sklearn.model_selection.KFold(shuffle=False)``:
    contiguous blocks, the first ``n % n_folds`` one longer."""
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise MetricInputError(f"n_folds: {n_folds!r}; expected an integer >= 2")
    if n < n_folds:
        raise MetricInputError(f"n_folds: {n_folds} folds need at least as many pairs, got {n}")
    sizes = np.full(n_folds, n // n_folds, dtype=np.int64)
    sizes[: n % n_folds] += 1
    return np.repeat(np.arange(n_folds), sizes)


def _embeddings(e: object, name: str) -> np.ndarray:
    a = np.asarray(e, dtype=np.float64)
    if a.ndim != 2:
        raise MetricInputError(f"{name}: has shape {a.shape}; expected (pairs, dim)")
    if not np.isfinite(a).all():
        raise MetricInputError(f"{name}: contains NaN or infinite values; expected finite embeddings")
    return a


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    # sklearn.preprocessing.normalize: zero rows stay zero
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    return x / norms[:, None]


def _prepare(emb1, emb2, issame, convention, flip1, flip2):
    if convention not in CONVENTIONS:
        raise MetricInputError(f"convention: {convention!r} is not one of {', '.join(CONVENTIONS)}")
    e1 = _embeddings(emb1, "emb1")
    e2 = _embeddings(emb2, "emb2")
    if e1.shape != e2.shape:
        raise MetricInputError(f"emb1 and emb2 differ in shape ({e1.shape} vs {e2.shape})")
    y = as_labels(issame, "issame")
    if len(y) != len(e1):
        raise MetricInputError(f"issame has {len(y)} entries but emb1 has {len(e1)} rows; expected one per pair")
    if (flip1 is None) != (flip2 is None):
        raise MetricInputError("flip1 / flip2: give both flipped-image embeddings or neither")
    if flip1 is not None:
        f1 = _embeddings(flip1, "flip1")
        f2 = _embeddings(flip2, "flip2")
        if f1.shape != e1.shape or f2.shape != e2.shape:
            raise MetricInputError(f"flip1 / flip2: shapes {f1.shape} / {f2.shape} must equal emb1's {e1.shape}")
        if convention == "insightface":  # embedding + flipped embedding, then normalised
            e1, e2 = e1 + f1, e2 + f2
        else:  # facenet: concatenated
            e1, e2 = np.concatenate([e1, f1], axis=1), np.concatenate([e2, f2], axis=1)
    if convention == "insightface":
        e1, e2 = _l2_normalise(e1), _l2_normalise(e2)
    return e1, e2, y


def pair_distances(e1: np.ndarray, e2: np.ndarray, distance: str = "euclidean") -> np.ndarray:
    """facenet's ``distance``: squared Euclidean, or ``arccos(cos_sim) / pi``."""
    if distance == "euclidean":
        d = e1 - e2
        return np.einsum("ij,ij->i", d, d)
    if distance == "cosine":
        dot = np.sum(e1 * e2, axis=1)
        norm = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.arccos(dot / norm) / np.pi
    raise MetricInputError(f"distance: {distance!r} is not one of {', '.join(DISTANCES)}")


def _grid_correct(dist_sorted_same: np.ndarray, dist_sorted_diff: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Correct decisions (same: dist < t) at each threshold; NaN distances sort
    last and are never "same", as ``numpy.less`` decides."""
    tp = np.searchsorted(dist_sorted_same, thresholds, side="left")
    tn = dist_sorted_diff.size - np.searchsorted(dist_sorted_diff, thresholds, side="left")
    return tp + tn


def _exact_candidates(d: np.ndarray) -> np.ndarray:
    u = np.unique(d[np.isfinite(d)])
    if u.size == 0:
        return np.array([0.0])
    mids = u[:-1] + (u[1:] - u[:-1]) / 2.0
    mids = np.where(mids <= u[:-1], u[1:], mids)
    return np.concatenate([[u[0]], mids, [np.nextafter(u[-1], np.inf)]])


def kfold_accuracy(
    emb1: object,
    emb2: object,
    issame: object,
    n_folds: int = 10,
    convention: str = "insightface",
    *,
    distance: str = "euclidean",
    subtract_mean: bool = False,
    flip1: object = None,
    flip2: object = None,
    exact: bool = False,
) -> KFoldResult:
    """K-fold verification accuracy from the two embeddings of each pair.

    ``convention="insightface"``: embeddings (plus flipped-image embeddings,
    summed, when given) are L2-normalised; distance is squared Euclidean.
    ``convention="facenet"``: embeddings are used as given (flipped-image
    embeddings are concatenated); ``distance`` is ``"euclidean"`` (squared)
    or ``"cosine"`` (``arccos(similarity) / pi``); ``subtract_mean`` removes
    the mean embedding of the training folds, per fold.

    A pair is "same" when distance < threshold.  Thresholds
    ``numpy.arange(0, 4, 0.01)`` (or, with ``exact=True``, the smallest
    training distance, every midpoint between distinct training distances
    and just above the largest); the first (smallest) best threshold on the
    training folds is applied to the test fold.  Folds are contiguous as
    scikit-learn's ``KFold(shuffle=False)``.
    """
    e1, e2, y = _prepare(emb1, emb2, issame, convention, flip1, flip2)
    if convention == "insightface" and (distance != "euclidean" or subtract_mean):
        raise MetricInputError(
            "distance / subtract_mean: insightface's protocol uses squared Euclidean distance of "
            "normalised embeddings only; use convention='facenet' for cosine or mean subtraction"
        )
    if distance not in DISTANCES:
        raise MetricInputError(f"distance: {distance!r} is not one of {', '.join(DISTANCES)}")
    fold_of = contiguous_folds(len(y), n_folds)
    grid = np.arange(0, 4, 0.01)
    dist_all = None if subtract_mean else pair_distances(e1, e2, distance)
    accs = np.zeros(n_folds)
    thrs = np.zeros(n_folds)
    for k in range(n_folds):
        test = fold_of == k
        train = ~test
        if subtract_mean:
            mean = np.mean(np.concatenate([e1[train], e2[train]]), axis=0)
            dist = pair_distances(e1 - mean, e2 - mean, distance)
        else:
            dist = dist_all
        d_tr, y_tr = dist[train], y[train]
        cand = _exact_candidates(d_tr) if exact else grid
        correct = _grid_correct(np.sort(d_tr[y_tr]), np.sort(d_tr[~y_tr]), cand)
        t = cand[int(np.argmax(correct))]
        d_te, y_te = dist[test], y[test]
        accs[k] = float(np.count_nonzero(np.less(d_te, t) == y_te)) / d_te.size
        thrs[k] = t
    label = f"{convention}: {'exact midpoints' if exact else 'grid arange(0,4,0.01)'}, " + (
        "squared euclidean of L2-normalised embeddings" if convention == "insightface" else f"{distance} distance"
    ) + f", {n_folds} contiguous folds, first best threshold, population std"
    return KFoldResult(float(np.mean(accs)), float(np.std(accs)), accs, thrs, np.arange(n_folds), label)


def val_at_far(
    emb1: object,
    emb2: object,
    issame: object,
    far: float = 1e-3,
    n_folds: int = 10,
    convention: str = "insightface",
    *,
    distance: str = "euclidean",
    subtract_mean: bool = False,
    flip1: object = None,
    flip2: object = None,
) -> ValResult:
    """VAL@FAR as insightface / facenet compute it.

    On each training split, FAR is computed on ``numpy.arange(0, 4, 0.001)``;
    if its maximum reaches the target, the threshold is
    ``interp1d(far_train, thresholds, kind="slinear")(far)`` (with the
    repeated-FAR behaviour of the SciPy of the time, see :func:`_slinear`),
    otherwise 0.
    VAL and FAR are then measured on the test fold ("same" when distance <
    threshold).  Returns mean VAL, its population std and mean FAR.
    """
    target = check_rate(far, "far")
    e1, e2, y = _prepare(emb1, emb2, issame, convention, flip1, flip2)
    if distance not in DISTANCES:
        raise MetricInputError(f"distance: {distance!r} is not one of {', '.join(DISTANCES)}")
    fold_of = contiguous_folds(len(y), n_folds)
    grid = np.arange(0, 4, 0.001)
    dist_all = None if subtract_mean else pair_distances(e1, e2, distance)
    vals, fars, thrs = np.zeros(n_folds), np.zeros(n_folds), np.zeros(n_folds)
    for k in range(n_folds):
        test = fold_of == k
        train = ~test
        if subtract_mean:
            mean = np.mean(np.concatenate([e1[train], e2[train]]), axis=0)
            dist = pair_distances(e1 - mean, e2 - mean, distance)
        else:
            dist = dist_all
        d_tr, y_tr = dist[train], y[train]
        n_diff = np.count_nonzero(~y_tr)
        fa = np.searchsorted(np.sort(d_tr[~y_tr]), grid, side="left")
        far_train = fa / float(n_diff) if n_diff else np.full(grid.size, np.nan)
        if np.max(far_train) >= target:
            t = _slinear(far_train, grid, target)
        else:
            t = 0.0
        d_te, y_te = dist[test], y[test]
        pred = np.less(d_te, t)
        n_same, n_d = np.count_nonzero(y_te), np.count_nonzero(~y_te)
        if n_same == 0 or n_d == 0:
            raise MetricInputError(
                f"issame: fold {k} has no {'same' if n_same == 0 else 'different'} pairs; "
                "VAL / FAR need both in every test fold"
            )
        vals[k] = np.count_nonzero(pred & y_te) / float(n_same)
        fars[k] = np.count_nonzero(pred & ~y_te) / float(n_d)
        thrs[k] = t
    return ValResult(float(np.mean(vals)), float(np.std(vals)), float(np.mean(fars)), vals, fars, thrs)


def _slinear(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """``interp1d(x, y, kind="slinear")(at)`` as SciPy computed it when the
    published code was written: a degree-1 B-spline with knots
    ``[x0, x..., x_last]``, which accepts repeated ``x`` (many thresholds share
    one FAR).  SciPy >= 1.x now rejects repeated ``x``; the value is the same
    wherever both work.  On a repeated ``x`` equal to ``at``, the last of the
    run wins (the spline's interval search)."""
    from scipy.interpolate import BSpline

    order = np.argsort(x, kind="mergesort")
    xs, ys = np.asarray(x, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    knots = np.r_[xs[0], xs, xs[-1]]
    v = float(BSpline.construct_fast(knots, ys, 1)(at))
    if not np.isfinite(v):  # a zero-width last interval: the spline's value there is y at the end
        v = float(ys[np.searchsorted(xs, at, side="right") - 1])
    return v


def kfold_accuracy_from_scores(
    scores: object,
    labels: object,
    folds: object,
    *,
    tie: str = "highest",
) -> KFoldResult:
    """K-fold accuracy from similarity scores with explicit fold ids.

    For each fold, the threshold is chosen on all other folds among: the
    smallest training score (accept all), every midpoint between consecutive
    distinct training scores, and just above the largest (accept none).  A
    pair is accepted when ``score >= threshold``.  Among thresholds with the
    same best training accuracy, ``tie`` picks the ``"highest"`` (fewest
    acceptances; the analogue of insightface's first best distance
    threshold), the ``"lowest"`` or the ``"middle"`` one (lower median of
    the tied candidates).  Accuracy is measured on the held-out fold; std
    is the population std over folds.
    """
    s = as_scores(scores, "scores")
    y = as_labels(labels, "labels")
    f = np.asarray(folds)
    if f.ndim != 1 or len(f) != len(s) or len(y) != len(s):
        raise MetricInputError(
            f"scores, labels and folds differ in length ({len(s)}, {len(y)}, {f.size}); expected one of each per pair"
        )
    if tie not in TIE_RULES:
        raise MetricInputError(f"tie: {tie!r} is not one of {', '.join(TIE_RULES)}")
    ids = np.unique(f)
    if ids.size < 2:
        raise MetricInputError(f"folds: {ids.size} distinct fold id(s); expected at least 2")
    accs = np.zeros(ids.size)
    thrs = np.zeros(ids.size)
    for k, fid in enumerate(ids):
        test = f == fid
        train = ~test
        s_tr, y_tr = s[train], y[train]
        u = np.unique(s_tr)
        mids = u[:-1] + (u[1:] - u[:-1]) / 2.0
        mids = np.where(mids <= u[:-1], u[1:], mids)
        cand = np.concatenate([[u[0]], mids, [np.nextafter(u[-1], np.inf)]])
        gen = np.sort(s_tr[y_tr])
        imp = np.sort(s_tr[~y_tr])
        tp = gen.size - np.searchsorted(gen, cand, side="left")  # genuine >= t
        tn = np.searchsorted(imp, cand, side="left")  # impostor < t
        correct = tp + tn
        best = np.flatnonzero(correct == correct.max())
        j = best[-1] if tie == "highest" else best[0] if tie == "lowest" else best[(best.size - 1) // 2]
        t = cand[j]
        accs[k] = np.count_nonzero((s[test] >= t) == y[test]) / float(np.count_nonzero(test))
        thrs[k] = t
    conv = (f"scores: threshold on the other folds over all midpoints (tie: {tie}), accept score >= t, "
            "population std")
    return KFoldResult(float(np.mean(accs)), float(np.std(accs)), accs, thrs, ids, conv)
