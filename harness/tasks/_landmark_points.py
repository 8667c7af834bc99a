"""A landmarker's points → the five points alignment uses (``--landmarker NAME`` in every task).

Alignment (:func:`harness.align.align`) maps five points — left eye centre, right eye
centre, nose tip, left and right mouth corner (image left / right) — onto a template.  A
landmarker gives its own scheme (:data:`harness.metrics.landmarks.SCHEMES`):

* a scheme that names the five (``ibug_68``, ``wflw_98``, ``cofw_29``, ``aflw_19``,
  ``five``): those points, read by the scheme (an eye centre is the mean of its contour
  where the scheme has no pupil);
* a scheme that does not (``dlib_5``: four eye corners and the base of the nose, no
  mouth): the five are *completed* from a reference face — the least-squares similarity
  transform (Umeyama 1991) that maps the reference's copy of the points the scheme does
  have onto the predicted ones carries the reference's five into the image.  The
  reference is dlib's mean face shape (the 68-point average ``get_face_chip_details``
  aligns to, in dlib's ``image_transforms/interpolation.h``), so ``dlib_5`` completes to
  where ``dlib_68`` would put the mouth corners on an average face.  Mouth corners that
  come from a reference move with the eyes and nose only: expression is not seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.metrics import landmarks as L
from harness.metrics._checks import MetricInputError
from harness.metrics.tracking import similarity_fit

__all__ = ["FIVE_RULE", "MISS_RULE", "REFERENCE_68", "LandmarkerUse", "alignment_points", "check_scheme", "five_rule",
           "landmarker_protocol", "landmarker_use"]

#: dlib's mean face (unit square, x right, y down) at the 68-point indices the schemes'
#: semantic points use: eye contours 36-47, nose tip 30, subnasale 33, mouth corners 48 / 54
REFERENCE_68: Mapping[int, tuple[float, float]] = MappingProxyType({
    30: (0.490127, 0.515625), 33: (0.490127, 0.628106),
    36: (0.121737, 0.216423), 37: (0.187122, 0.178758), 38: (0.265825, 0.179852),
    39: (0.334606, 0.231733), 40: (0.260918, 0.245099), 41: (0.182743, 0.244077),
    42: (0.645647, 0.231733), 43: (0.714428, 0.179852), 44: (0.793132, 0.178758),
    45: (0.858516, 0.216423), 46: (0.797510, 0.244077), 47: (0.719335, 0.245099),
    48: (0.254149, 0.780233), 54: (0.726104, 0.780233),
})

#: the semantic points a completion may be fitted on (every one the reference has)
_FIT_ON = ("left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer", "left_eye_centre",
           "right_eye_centre", "nose_tip", "subnasale", "mouth_left", "mouth_right")

FIVE_RULE = "the scheme's own eye centres, nose tip and mouth corners"

#: what a face keeps when the landmarker places no finite points in its box (stated with the count)
MISS_RULE = "kept the detector's points (a box crop where the detector gives none)"


def _reference() -> np.ndarray:
    ref = np.full((68, 2), np.nan)
    for i, xy in REFERENCE_68.items():
        ref[i] = xy
    return ref


def _fit_names(scheme: str) -> tuple[str, ...]:
    s = L.get_scheme(scheme)
    return tuple(n for n in _FIT_ON if n in s.points)


def check_scheme(scheme: str, name: str) -> None:
    """Raise a one-line :class:`ConfigError` when landmarker ``name`` (scheme ``scheme``) cannot place
    the five alignment points: it names neither them nor three points to complete them from."""
    s = L.get_scheme(scheme)
    if all(n in s.points for n in L.COMMON_FIVE):
        return
    if len(_fit_names(scheme)) < 3:
        raise ConfigError(f"--landmarker {name}: its points ({scheme}) name neither the five alignment points nor "
                          "three eye / nose / mouth points to complete them from; use a landmarker with eye, nose "
                          "and mouth points (dlib_68, dlib_5, mtcnn, retinaface, yunet)")


def five_rule(scheme: str) -> str:
    """How the five alignment points come from ``scheme`` (stated in the protocol)."""
    s = L.get_scheme(scheme)
    if all(n in s.points for n in L.COMMON_FIVE):
        return FIVE_RULE
    return (f"completed from dlib's mean face fitted (similarity) to the {len(_fit_names(scheme))} points "
            f"{', '.join(_fit_names(scheme))}")


def alignment_points(shape: np.ndarray, scheme: str) -> np.ndarray:
    """(5, 2) float32 alignment points of one face's ``shape`` (P, 2) in ``scheme``; NaN when the
    shape has a non-finite point among those used, or they all sit at one place."""
    s = L.get_scheme(scheme)
    shape = np.asarray(shape, np.float64).reshape(-1, 2)
    if len(shape) != s.num_points:
        raise ConfigError(f"a {scheme} landmarker returned {len(shape)} points per face, expected {s.num_points}; "
                          "its spec's num_points / scheme are wrong")
    if all(n in s.points for n in L.COMMON_FIVE):
        return _usable(s.semantic(shape, L.COMMON_FIVE))
    names = _fit_names(scheme)
    have = s.semantic(shape, names)
    if len(names) < 3 or not np.isfinite(have).all():
        return np.full((5, 2), np.nan, np.float32)
    ref68 = L.get_scheme("ibug_68")
    ref = _reference()
    try:
        m = similarity_fit(ref68.semantic(ref, names), have)
    except MetricInputError:  # every point at one place: nothing to align to
        return np.full((5, 2), np.nan, np.float32)
    five = ref68.semantic(ref, L.COMMON_FIVE)
    return _usable(five @ m[:2, :2].T + m[:2, 2])


def _usable(five: np.ndarray) -> np.ndarray:
    """``five`` as float32, or NaN when they cannot align a face (non-finite, or all at one place)."""
    if not np.isfinite(five).all() or np.ptp(five, axis=0).max() < 1e-6:
        return np.full((5, 2), np.nan, np.float32)
    return five.astype(np.float32)


@dataclass(frozen=True)
class LandmarkerUse:
    """How a ``--landmarker`` placed the alignment points of one evaluated set's faces.

    :param name: the landmarker.
    :param scheme: its point scheme (:data:`harness.metrics.landmarks.SCHEMES`).
    :param detector: the detector whose box it ran in.
    :param rule: how its points became the five (:func:`five_rule`).
    :param faces: faces the detector found (the landmarker ran in each of their boxes).
    :param misses: of those, the faces where it placed no finite points (they kept the detector's points).
    """

    name: str
    scheme: str
    detector: str
    rule: str
    faces: int
    misses: int

    @property
    def miss_fraction(self) -> float | None:
        return self.misses / self.faces if self.faces else None

    def protocol(self) -> dict[str, Any]:
        """The protocol's ``landmarker_misses`` entry: the count, its fraction of the faces and the rule."""
        frac = self.miss_fraction
        return {"landmarker_misses": {
            "n": self.misses, "of_faces": self.faces, "fraction": None if frac is None else round(frac, 6),
            "rule": f"faces where landmarker {self.name} placed no finite points in {self.detector}'s box "
                    f"{MISS_RULE}"}}

    def manifest(self) -> dict[str, Any]:
        """The manifest's ``landmarker`` entry: who placed the alignment points and how."""
        return {"name": self.name, "scheme": self.scheme,
                "points": f"points from landmarker {self.name} in detector {self.detector}'s box",
                "five": self.rule}


def landmarker_use(name: str, scheme: str, detector: str, rows: Sequence[Any]) -> LandmarkerUse:
    """The :class:`LandmarkerUse` of one set from its detection-store rows
    (:func:`harness.tasks._faces.refine_one`: ``row[2]`` a face was found, ``row[5]`` the
    landmarker missed it).  A row without the landmarker's flag is an error: its points
    cannot be told apart."""
    faces = misses = 0
    for row in rows:
        if row is None or not row[2]:
            continue
        if len(row) < 6:
            raise HarnessError("a detection-store row without the landmarker's miss flag: refine it first "
                             "(harness.tasks._faces.refine_one)")
        faces += 1
        misses += bool(row[5])
    return LandmarkerUse(name, scheme, detector, five_rule(scheme), faces, misses)


def landmarker_protocol(use: LandmarkerUse | None) -> dict[str, Any]:
    """``**landmarker_protocol(use)`` in a task's protocol: the ``landmarker_misses`` entry, or
    nothing when the detector placed the points (no ``--landmarker``, or already-aligned data)."""
    return {} if use is None else use.protocol()
