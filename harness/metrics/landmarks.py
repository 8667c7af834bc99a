"""Facial landmark metrics (numpy only): NME, CED, AUC and failure rate.

Point schemes
-------------
A *scheme* is a landmark convention (``ibug_68``, ``wflw_98``, ``cofw_29``,
``aflw_19``, ``five``, ``dlib_5``).  Each is stated here as data: which of its
points (0-based; a tuple is averaged) are the named *semantic* points below.
Two schemes are compared on the semantic points both have — the common five
(``left_eye_centre``, ``right_eye_centre``, ``nose_tip``, ``mouth_left``,
``mouth_right``; left / right as seen in the image) when both have them —
and on every point when the schemes are the same.

Normalisers (the distance an error is divided by, always from the ground truth)
-------------------------------------------------------------------------------
``inter_ocular`` (the default)
    distance between the outer eye corners — the 300-W convention
    (Sagonas et al., "300 Faces In-the-Wild Challenge: database and results",
    IMAVIS 2016).
``inter_pupil``
    distance between the eye centres (pupils where the scheme has them, else
    the mean of the eye contour), as in early 300-W / LFPW papers.
``box``
    ``sqrt(w * h)`` of the face box (not its diagonal) — the AFLW2000-3D
    convention of 3DDFA (Zhu et al., "Face Alignment in Full Pose Range: A 3D
    Total Solution", TPAMI 2019).

Curves and summaries
--------------------
CED (cumulative error distribution): the fraction of faces with NME <= x.
``AUC@t`` = the integral of the CED over [0, t] divided by t, computed exactly
for the step CED: ``mean(max(0, 1 - e_i / t))``.  ``failure_rate@t``: the
fraction of faces with NME > t.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from harness.metrics._checks import MetricInputError

__all__ = [
    "COMMON_FIVE", "NORMALISERS", "SCHEMES", "Scheme", "auc_at", "ced_curve", "compared_points",
    "failure_rate", "get_scheme", "nme", "normaliser", "per_face_nme", "summary",
]

#: the five points every scheme that has them is compared on (image left / right)
COMMON_FIVE = ("left_eye_centre", "right_eye_centre", "nose_tip", "mouth_left", "mouth_right")

#: normaliser name -> what it is (stated in results)
NORMALISERS: Mapping[str, str] = MappingProxyType({
    "inter_ocular": "distance between the outer eye corners of the ground truth (300-W convention)",
    "inter_pupil": "distance between the ground-truth eye centres",
    "box": "sqrt(w*h) of the ground-truth face box (3DDFA's AFLW2000-3D convention), not its diagonal",
})


@dataclass(frozen=True)
class Scheme:
    """One landmark convention.

    :param name: registry-style name (``ibug_68``).
    :param num_points: how many points an annotation of it has.
    :param points: semantic point -> index, or a tuple of indices averaged.
    :param source: where the layout is defined.
    """

    name: str
    num_points: int
    points: Mapping[str, int | tuple[int, ...]] = field(default_factory=dict)
    source: str = ""

    def semantic(self, shape: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(..., len(names), 2): the named points of ``shape`` (..., num_points, 2)."""
        out = []
        for n in names:
            idx = self.points[n]
            out.append(shape[..., idx, :] if isinstance(idx, int) else shape[..., list(idx), :].mean(axis=-2))
        return np.stack(out, axis=-2)


_EYES = ("left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer")

#: every scheme, stated as data (0-based indices; tuples are averaged)
SCHEMES: Mapping[str, Scheme] = MappingProxyType({s.name: s for s in (
    Scheme("ibug_68", 68, {
        "left_eye_outer": 36, "left_eye_inner": 39, "right_eye_inner": 42, "right_eye_outer": 45,
        "left_eye_centre": (36, 37, 38, 39, 40, 41), "right_eye_centre": (42, 43, 44, 45, 46, 47),
        "nose_tip": 30, "subnasale": 33, "mouth_left": 48, "mouth_right": 54},
        "iBUG 300-W 68-point markup (Sagonas et al. 2013); also 300-VW, AFLW2000-3D, 300W-LP"),
    Scheme("wflw_98", 98, {
        "left_eye_outer": 60, "left_eye_inner": 64, "right_eye_inner": 68, "right_eye_outer": 72,
        "left_eye_centre": 96, "right_eye_centre": 97, "nose_tip": 54, "subnasale": 57,
        "mouth_left": 76, "mouth_right": 82},
        "WFLW 98 points (Wu et al., Look at Boundary, CVPR 2018); 96 / 97 are the pupils"),
    Scheme("cofw_29", 29, {
        "left_eye_outer": 8, "right_eye_outer": 9, "left_eye_inner": 10, "right_eye_inner": 11,
        "left_eye_centre": 16, "right_eye_centre": 17, "nose_tip": 20, "mouth_left": 22, "mouth_right": 23},
        "COFW 29 points (Burgos-Artizzu et al., RCPR, ICCV 2013; LFPW order); 16 / 17 are the pupils"),
    Scheme("aflw_19", 19, {
        "left_eye_outer": 6, "left_eye_centre": 7, "left_eye_inner": 8, "right_eye_inner": 9,
        "right_eye_centre": 10, "right_eye_outer": 11, "nose_tip": 13, "mouth_left": 15, "mouth_right": 17},
        "AFLW 21 points without the ear lobes (Koestinger et al. 2011), as mmpose and HRNet use them"),
    Scheme("five", 5, {n: i for i, n in enumerate(COMMON_FIVE)},
           "facebench's five points (detectors, alignment): eye centres, nose tip, mouth corners"),
    Scheme("dlib_5", 5, {
        "right_eye_outer": 0, "right_eye_inner": 1, "left_eye_outer": 2, "left_eye_inner": 3, "subnasale": 4},
        "dlib shape_predictor_5_face_landmarks: eye corners and the base of the nose (68-point 45, 42, 36, 39, 33)"),
    Scheme("lapa_106", 106, {}, "LaPa 106 points (Liu et al., AAAI 2020): read, compared with itself only"),
)})


def get_scheme(name: str) -> Scheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise MetricInputError(f"unknown landmark scheme {name!r}; schemes: {', '.join(SCHEMES)}") from None


def compared_points(pred_scheme: str, gt_scheme: str) -> tuple[str, ...] | None:
    """The semantic points two schemes are compared on; ``None`` means every point (same scheme).

    :raises MetricInputError: the schemes share fewer than two points.
    """
    if pred_scheme == gt_scheme:
        return None
    p, g = get_scheme(pred_scheme), get_scheme(gt_scheme)
    if all(n in p.points and n in g.points for n in COMMON_FIVE):
        return COMMON_FIVE
    shared = tuple(n for n in (*_EYES, *COMMON_FIVE, "subnasale") if n in p.points and n in g.points)
    if len(shared) < 2:
        raise MetricInputError(f"landmark schemes {pred_scheme} and {gt_scheme} share no points to compare")
    return shared


def _shapes(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 2 or a.shape[1] == 0:
        raise MetricInputError(f"{name}: has shape {a.shape}; expected (faces, points, 2)")
    if not np.isfinite(a).all():
        raise MetricInputError(f"{name}: holds NaN or infinite coordinates; expected finite pixel positions")
    return a


def normaliser(gt: Any, scheme: str, kind: str = "inter_ocular", boxes: Any = None) -> np.ndarray:
    """(N,) the distance each face's error is divided by (see the module docstring).

    :param boxes: (N, 4) x1, y1, x2, y2 for ``box``; default the tight box of the ground-truth points.
    """
    g = _shapes(gt, "ground truth")
    if kind == "box":
        b = np.asarray(boxes, np.float64).reshape(-1, 4) if boxes is not None else np.concatenate(
            [g.min(axis=1), g.max(axis=1)], axis=1)
        d = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
    elif kind in ("inter_ocular", "inter_pupil"):
        s = get_scheme(scheme)
        names = ("left_eye_outer", "right_eye_outer") if kind == "inter_ocular" else (
            "left_eye_centre", "right_eye_centre")
        if not all(n in s.points for n in names):
            raise MetricInputError(f"scheme {scheme} has no {' / '.join(names)}: {kind} NME is undefined; use box")
        eyes = s.semantic(g, names)
        d = np.linalg.norm(eyes[:, 0] - eyes[:, 1], axis=-1)
    else:
        raise MetricInputError(f"unknown normaliser {kind!r}; expected one of {', '.join(NORMALISERS)}")
    if len(d) != len(g) or (d <= 0).any():
        raise MetricInputError(f"{kind} distance is zero for {int((d <= 0).sum())} face(s); cannot normalise")
    return d


def per_face_nme(pred: Any, gt: Any, pred_scheme: str, gt_scheme: str, kind: str = "inter_ocular",
                 boxes: Any = None) -> np.ndarray:
    """(N,) the mean point-to-point error of each face divided by its normaliser."""
    p, g = _shapes(pred, "predictions"), _shapes(gt, "ground truth")
    if len(p) != len(g):
        raise MetricInputError(f"{len(p)} predicted faces but {len(g)} ground-truth faces")
    for a, s, what in ((p, pred_scheme, "predictions"), (g, gt_scheme, "ground truth")):
        if a.shape[1] != get_scheme(s).num_points:
            raise MetricInputError(f"{what}: {a.shape[1]} points, but scheme {s} has {get_scheme(s).num_points}")
    names = compared_points(pred_scheme, gt_scheme)
    if names is not None:
        p, gp = get_scheme(pred_scheme).semantic(p, names), get_scheme(gt_scheme).semantic(g, names)
    else:
        gp = g
    err = np.linalg.norm(p - gp, axis=-1).mean(axis=1)
    return err / normaliser(g, gt_scheme, kind, boxes)


def nme(per_face: Any) -> float | None:
    """The mean of the finite per-face NMEs (``+inf`` marks a face without a prediction);
    ``None`` when no face has one."""
    e = _errors(per_face)
    finite = e[np.isfinite(e)]
    return float(finite.mean()) if len(finite) else None


def _errors(per_face: Any) -> np.ndarray:
    """Per-face errors: >= 0, ``+inf`` allowed (no prediction: a failure at every threshold)."""
    e = np.asarray(per_face, np.float64).reshape(-1)
    if len(e) == 0:
        raise MetricInputError("no faces: NME, CED and AUC need at least one error")
    if np.isnan(e).any() or (e < 0).any():
        raise MetricInputError("per-face errors must be >= 0 (+inf for a face without a prediction), not NaN")
    return e


def ced_curve(per_face: Any, max_error: float = 0.10, steps: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(x, fraction of faces with NME <= x) on ``steps`` points of [0, max_error]."""
    e = np.sort(_errors(per_face))
    x = np.linspace(0.0, max_error, steps)
    return x, np.searchsorted(e, x, side="right") / len(e)


def auc_at(per_face: Any, threshold: float = 0.08) -> float:
    """Area under the CED on [0, threshold] divided by ``threshold`` (exact for the step CED)."""
    if not threshold > 0:
        raise MetricInputError(f"AUC threshold must be > 0, got {threshold}")
    e = _errors(per_face)
    return float(np.clip(1.0 - e / threshold, 0.0, None).mean())


def failure_rate(per_face: Any, threshold: float = 0.08) -> float:
    """Fraction of faces whose NME is above ``threshold``."""
    return float((_errors(per_face) > threshold).mean())


def summary(per_face: Any, thresholds: Sequence[float] = (0.08, 0.10), auc_threshold: float = 0.08) -> dict:
    """NME, median, AUC@t and failure rates of one set of per-face errors (plain floats; None if undefined)."""
    e = _errors(per_face)
    out: dict[str, Any] = {"nme": nme(e), "auc": auc_at(e, auc_threshold), "faces": int(len(e)),
                           "median": float(np.median(e)) if np.isfinite(np.median(e)) else None}
    out["failure_rate"] = {f"{t:.2f}": failure_rate(e, t) for t in thresholds}
    return out
