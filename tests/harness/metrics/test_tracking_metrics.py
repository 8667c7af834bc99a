"""``harness.metrics.tracking`` against references: skimage's SimilarityTransform (Umeyama) for the
fit, a direct residual for the jitter, itertools.groupby for continuity; named edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.metrics._checks import MetricInputError
from harness.metrics.tracking import continuity, frame_jitter, similarity_fit

transform = pytest.importorskip("skimage.transform")


def _skimage_fit(src: np.ndarray, dst: np.ndarray):
    cls = transform.SimilarityTransform
    if hasattr(cls, "from_estimate"):  # skimage >= 0.26
        return cls.from_estimate(src, dst)
    ref = cls()
    assert ref.estimate(src, dst)
    return ref


def _similar(points: np.ndarray, scale: float, angle: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return scale * points @ np.array([[c, -s], [s, c]]).T + np.asarray(shift)


@pytest.mark.parametrize("seed", range(5))
def test_fit_matches_skimage_on_noisy_points(seed):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(68, 2)) * 40 + 200
    dst = _similar(src, 1.3, 0.4, (15, -7)) + rng.normal(size=src.shape) * 3
    ref = _skimage_fit(src, dst)
    np.testing.assert_allclose(similarity_fit(src, dst), ref.params, rtol=1e-9, atol=1e-8)


def test_exact_similarity_motion_has_no_jitter_and_a_wobble_has_its_residual():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 2)) * 30
    moved = _similar(base, 0.9, -0.3, (40, 12))
    shapes = np.stack([base, moved, moved])
    j = frame_jitter(shapes, np.ones(3))
    assert np.isnan(j[0]) and j[1] == pytest.approx(0, abs=1e-9) and j[2] == pytest.approx(0, abs=1e-9)
    # one point pushed by d: the reference is the residual of skimage's best similarity
    wobble = moved.copy()
    wobble[0] += [3.0, 0.0]
    ref = _skimage_fit(moved, wobble)
    expected = 100 * np.linalg.norm(ref(moved) - wobble, axis=1).mean() / 20.0
    got = frame_jitter(np.stack([moved, wobble]), np.array([20.0, 20.0]))[1]
    assert got == pytest.approx(expected, rel=1e-9) and 0 < got < 100 * 3 / 20


def test_frames_without_a_shape_break_the_jitter():
    s = np.zeros((4, 3, 2)) + np.arange(3)[None, :, None] * [1.0, 2.0]
    s[2] = np.nan
    j = frame_jitter(s, np.ones(4))
    assert np.isnan(j[[0, 2, 3]]).all() and j[1] == pytest.approx(0, abs=1e-9)
    assert np.isnan(frame_jitter(s[:2], np.array([1.0, 0.0]))[1])  # a zero normaliser: undefined


def test_a_mirror_image_is_not_a_similarity():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 3.0]])
    mirrored = src * [-1.0, 1.0]
    m = similarity_fit(src, mirrored)
    assert np.linalg.det(m[:2, :2]) > 0  # a rotation and scale, never a reflection
    assert frame_jitter(np.stack([src, mirrored]), np.ones(2))[1] > 10


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.zeros((1, 2))])
def test_degenerate_sources_raise(bad):
    with pytest.raises(MetricInputError, match="distinct"):
        similarity_fit(bad, bad + 1)
    with pytest.raises(MetricInputError, match=r"\(P, 2\)"):
        similarity_fit(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(MetricInputError, match="T, P, 2"):
        frame_jitter(np.zeros((3, 2)), np.ones(3))


def _reference_continuity(found):
    runs = [len(list(g)) for k, g in itertools.groupby(found) if k]
    breaks = sum(1 for a, b in zip(found, found[1:]) if a and not b)
    return {"frames": len(found), "with_shape": sum(found) / len(found), "breaks": breaks,
            "longest_run": max(runs, default=0)}


@pytest.mark.parametrize("found", [[True] * 5, [False] * 4, [True, False] * 3, [False, True, True, False, True],
                                   [True], list(np.random.default_rng(3).random(50) > 0.3)])
def test_continuity_matches_groupby(found):
    assert continuity(found) == pytest.approx(_reference_continuity([bool(x) for x in found]))


def test_continuity_of_nothing_raises():
    with pytest.raises(MetricInputError, match="empty"):
        continuity([])
