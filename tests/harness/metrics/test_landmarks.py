"""Landmark metrics against a straightforward reference implementation, on named edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics import landmarks as L
from harness.metrics._checks import MetricInputError


# ------------------------------------------------------------------ reference (plain loops)
def ref_nme_68(pred, gt, kind="inter_ocular"):
    """Per-face NME over all 68 points, written out point by point."""
    out = []
    for p, g in zip(pred, gt):
        if kind == "inter_ocular":
            d = math.dist(g[36], g[45])
        elif kind == "inter_pupil":
            d = math.dist(np.mean(g[36:42], axis=0), np.mean(g[42:48], axis=0))
        else:
            w, h = max(x for x, _ in g) - min(x for x, _ in g), max(y for _, y in g) - min(y for _, y in g)
            d = math.sqrt(w * h)
        out.append(sum(math.dist(a, b) for a, b in zip(p, g)) / len(g) / d)
    return np.array(out)


def ref_auc(errors, t, grid=200001):
    """Area under the step CED on [0, t] / t by a fine Riemann sum."""
    xs = np.linspace(0, t, grid)
    e = np.asarray(errors)
    ced = (e[None, :] <= xs[:, None]).mean(axis=1)
    return float(np.trapezoid(ced, xs) / t)


def _face68(seed=0):
    rng = np.random.default_rng(seed)
    g = rng.uniform(100, 200, size=(68, 2))
    g[36], g[45] = (110.0, 140.0), (190.0, 140.0)  # outer eye corners 80 px apart
    return g


# ------------------------------------------------------------------ NME
def test_perfect_prediction_has_zero_error_everywhere():
    g = np.stack([_face68(0), _face68(1)])
    for kind in L.NORMALISERS:
        e = L.per_face_nme(g, g, "ibug_68", "ibug_68", kind)
        assert np.array_equal(e, np.zeros(2))
    assert L.auc_at(np.zeros(2)) == 1.0 and L.failure_rate(np.zeros(2)) == 0.0


def test_one_point_off_by_a_known_distance():
    g = _face68()
    p = g.copy()
    p[30] += (8.0, 0.0)  # 8 px on one of 68 points, inter-ocular 80 px
    e = L.per_face_nme(p, g, "ibug_68", "ibug_68")
    assert e[0] == pytest.approx(8.0 / 68 / 80.0)
    assert e[0] == pytest.approx(ref_nme_68([p], [g])[0])


@pytest.mark.parametrize("kind", ["inter_ocular", "inter_pupil", "box"])
def test_random_predictions_match_the_reference(kind):
    rng = np.random.default_rng(3)
    gt = np.stack([_face68(s) for s in range(5)])
    pred = gt + rng.normal(0, 3, gt.shape)
    assert np.allclose(L.per_face_nme(pred, gt, "ibug_68", "ibug_68", kind), ref_nme_68(pred, gt, kind))


def test_box_normaliser_is_sqrt_of_area_not_diagonal():
    g = np.array([[0, 0], [40, 10], [10, 90]], float)  # box 40 x 90
    assert L.normaliser(g[None], "five", "box")[0] == pytest.approx(60.0)  # sqrt(3600), the diagonal is 98.5
    assert L.normaliser(g[None], "five", "box", boxes=[[0, 0, 10, 40]])[0] == pytest.approx(20.0)


# ------------------------------------------------------------------ CED / AUC / failures
def test_auc_of_a_known_step_ced():
    # errors 0.02 and 0.06: the CED is 0 on [0, .02), 1/2 on [.02, .06), 1 from .06
    # area on [0, 0.08] = 0.5 * 0.04 + 1 * 0.02 = 0.04 -> AUC = 0.5
    e = [0.02, 0.06]
    assert L.auc_at(e, 0.08) == pytest.approx(0.5)
    assert L.auc_at(e, 0.08) == pytest.approx(ref_auc(e, 0.08), abs=1e-4)
    x, y = L.ced_curve(e, max_error=0.08, steps=5)  # x = 0, .02, .04, .06, .08
    assert np.allclose(y, [0, 0.5, 0.5, 1, 1])


def test_all_failures():
    e = [0.2, 0.5, np.inf]
    assert L.auc_at(e, 0.08) == 0.0
    assert L.failure_rate(e, 0.08) == 1.0 and L.failure_rate(e, 0.10) == 1.0
    assert L.nme(e) == pytest.approx(0.35)  # the face without a prediction is left out of the mean
    assert L.summary([np.inf])["nme"] is None


def test_failure_rate_is_strictly_above_the_threshold_and_matches_the_reference():
    rng = np.random.default_rng(0)
    e = np.r_[rng.uniform(0, 0.2, 50), 0.08, 0.10]
    for t in (0.08, 0.10):
        assert L.failure_rate(e, t) == pytest.approx(sum(v > t for v in e) / len(e))
    assert L.auc_at(e, 0.08) == pytest.approx(ref_auc(e, 0.08), abs=1e-4)


def test_errors_are_checked():
    with pytest.raises(MetricInputError, match="at least one"):
        L.nme([])
    with pytest.raises(MetricInputError, match="NaN"):
        L.auc_at([0.1, np.nan])
    with pytest.raises(MetricInputError, match="points"):
        L.per_face_nme(np.zeros((1, 5, 2)), np.zeros((1, 68, 2)), "ibug_68", "ibug_68")
    g = np.zeros((1, 68, 2))
    with pytest.raises(MetricInputError, match="zero"):
        L.per_face_nme(g, g, "ibug_68", "ibug_68")
    with pytest.raises(MetricInputError, match="unknown landmark scheme"):
        L.get_scheme("ibug_67")


# ------------------------------------------------------------------ schemes mapped to the common five
def test_each_scheme_maps_to_the_common_five_as_stated():
    """A shape whose point i sits at (i, 2i): the five points read back the stated indices."""
    expected = {  # scheme -> (left eye, right eye, nose tip, mouth left, mouth right) as index or mean
        "ibug_68": (np.mean(range(36, 42)), np.mean(range(42, 48)), 30, 48, 54),
        "wflw_98": (96, 97, 54, 76, 82),
        "cofw_29": (16, 17, 20, 22, 23),
        "aflw_19": (7, 10, 13, 15, 17),
        "five": (0, 1, 2, 3, 4),
    }
    for name, idx in expected.items():
        s = L.get_scheme(name)
        shape = np.stack([np.arange(s.num_points), 2 * np.arange(s.num_points)], axis=1).astype(float)
        got = s.semantic(shape, L.COMMON_FIVE)
        assert np.allclose(got[:, 0], idx) and np.allclose(got[:, 1], 2 * np.asarray(idx, float)), name


def test_cross_scheme_comparison_uses_the_common_five():
    g68 = _face68()
    five = L.get_scheme("ibug_68").semantic(g68, L.COMMON_FIVE)
    assert L.compared_points("five", "ibug_68") == L.COMMON_FIVE
    assert L.per_face_nme(five, g68, "five", "ibug_68")[0] == 0.0
    shifted = five + (4.0, 0.0)  # every point 4 px off; inter-ocular 80
    assert L.per_face_nme(shifted, g68, "five", "ibug_68")[0] == pytest.approx(0.05)


def test_dlib_5_is_compared_on_eye_corners_and_nose_base():
    g68 = _face68()
    d5 = g68[[45, 42, 36, 39, 33]]
    shared = L.compared_points("dlib_5", "ibug_68")
    assert set(shared) >= {"left_eye_outer", "right_eye_outer", "subnasale"} and "mouth_left" not in shared
    assert L.per_face_nme(d5, g68, "dlib_5", "ibug_68")[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(MetricInputError, match="share no points"):
        L.compared_points("lapa_106", "ibug_68")
