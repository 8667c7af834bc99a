"""Landmark tracking in video (``harness run --landmarker NAME --eval video=PATH --protocol tracking``).

Two followers run side by side on the same decoded frames, each timed on its own:

* **tracking** (cascade-regression tracking): the detector finds the face on the first frame;
  on every later frame the landmarker starts from a box derived from the previous frame's
  shape (``box``: ``fit`` — the landmarker's start shape, a box-initialised cascade's mean shape,
  fitted to the previous shape's rigid points by the scale and translation of a similarity;
  ``shape`` — the detector box expressed in the frame of the shape's rigid points at the last
  detection, moved and scaled with them; either then averaged with the previous box by
  ``smooth``).  With ``hold`` > 0 the previous box is kept while the rigid points stay within
  ``hold`` x inter-ocular distance (centre and size) of where they were when it was placed, so a
  box-initialised predictor starts from the same place on a still face instead of chasing its
  own noise.  With ``starts`` = K > 1 the landmarker runs on each tracked frame from K start
  boxes (a detector's box keeps one, so a detection gives the same shape in both modes) — the box and
  (K - 1) / 2 pairs of opposite perturbations of it (shift and/or scale by ``spread`` of its
  side, :func:`start_boxes`) — and the frame's shape is the mean (``combine``; or the
  coordinate-wise median) of the K shapes.  Multiple initialisations combined into one output,
  their disagreement a failure signal (``max_start_spread``), are how RCPR (Burgos-Artizzu, Perona
  & Dollar, "Robust face landmark estimation under occlusion", ICCV 2013) makes a cascade's output
  less dependent on where it starts — which is what makes a tracked box-initialised cascade jitter.
  RCPR takes the median; on video the mean jitters less (a coordinate-wise median switches between
  the starts' shapes from frame to frame; docs/landmarks.md).  ``one_euro`` filters the reported
  points (the tracker follows the raw ones).
  The detector runs again only when a quality check fails:
  no shape, fewer than ``min_inside`` of the points in the image, a scale change beyond
  ``max_scale_change`` or a non-rigid change beyond ``max_residual`` of the inter-ocular
  distance from the previous frame, K start shapes further than ``max_start_spread`` (RMS, of the
  inter-ocular distance) from their combination, or — every ``check_every`` frames — the detector finds a
  face that does not overlap the tracked box (IoU < ``min_iou``);
* **detect every frame**: the detector runs on every frame and the landmarker on the chosen box.

One face is followed: the detection overlapping the previous frame's box most, else the
highest-scoring one.  Metrics without annotations: jitter (``harness.metrics.tracking``:
frame-to-frame point motion after removing the best similarity transform, % of the shape's
inter-ocular distance), continuity (frames with a shape, breaks, re-detections) and fps
(detector + landmarker time only; decoding excluded).  With per-frame annotations (a
landmark dataset such as 300-VW's ``.pts`` clips, frames in key order) also NME per frame.
"""

from __future__ import annotations

import base64
import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from harness.errors import ConfigError, DataError, HarnessError
from harness.metrics import Metric
from harness.metrics import landmarks as L
from harness.metrics import tracking as TM
from harness.metrics.detection import iou
from harness.specs import check_range, field_types, parse_option_value, settings_from_options
from harness.tasks import choose_detector
from harness.tasks._data import open_dataset
from harness.tasks._faces import progress_iter
from harness.tasks._one_euro import OneEuroFilter
from harness.types import BoxInitialisedLandmarker

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.tasks import TaskContext

__all__ = ["BOX_RULES", "COMBINE_RULES", "MAX_STARTS", "MODES", "Follower", "TrackerSettings", "combine_shapes",
           "rigid_points", "run", "shape_iod", "start_boxes"]

MODES = ("tracking", "detect_every_frame")
#: how the next box is placed (``-o tracking.box=``)
BOX_RULES = ("shape", "fit")
STRIP_FRAMES = 6
STRIP_WIDTH = 192
#: how the K shapes of the multi-start rule are combined (``-o tracking.combine=``)
COMBINE_RULES = ("mean", "median")
#: the perturbations of the start box, one of each opposite pair, in the order they are taken: unit
#: directions in (x shift, y shift, log-scale), each component in units of ``spread`` (x, y, scale;
#: the xy diagonals; the mixed shift-and-scale diagonals; the four space diagonals: 13 pairs)
_PAIRS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1],
                   [0, 1, -1], [1, 1, 1], [1, 1, -1], [1, -1, 1], [1, -1, -1]], np.float64)
_PAIRS /= np.linalg.norm(_PAIRS, axis=1, keepdims=True)
MAX_STARTS = 1 + 2 * len(_PAIRS)


@dataclass(frozen=True)
class TrackerSettings:
    """``-o tracking.KEY=VALUE``: the tracking-quality check (stated in every tracking result)."""

    #: largest non-rigid change from the previous frame's shape, as a fraction of the inter-ocular distance
    max_residual: float = 0.25
    #: largest change of the shape's size from the previous frame (0.25: x0.8 to x1.25)
    max_scale_change: float = 0.25
    #: least fraction of the points inside the image
    min_inside: float = 0.8
    #: every N frames the detector checks the tracked box (0: never; it then runs only to re-detect)
    check_every: int = 10
    #: the check fails when the detector finds faces and none overlaps the tracked box by this IoU
    min_iou: float = 0.3
    #: the box of frame t is this share of frame t-1's box plus the rest of the box from t-1's shape
    smooth: float = 0.0
    #: (box, hold: defaults chosen on short_hamilton_clip.mp4, the one real clip here; docs/landmarks.md)
    #: how the box of frame t comes from frame t-1's shape: "shape" (the detector's box carried in the
    #: frame of the rigid points) or "fit" (the landmarker's mean shape fitted, scale and translation of a
    #: similarity, to the rigid points; :class:`harness.types.BoxInitialisedLandmarker`)
    box: str = "fit"
    #: box hysteresis: the previous box is kept until the rigid points' centre moves, or their size
    #: changes, by more than this fraction of the inter-ocular distance since the box was placed (0: off)
    hold: float = 0.05
    #: one-euro filter (Casiez et al. 2012) of the reported points; the tracker itself follows the raw ones
    one_euro: bool = False
    #: the filter's cut-off for a still face, cycles per frame (0.05: 1.5 Hz at 30 fps)
    euro_min_cutoff: float = 0.05
    #: cut-off added per inter-ocular distance per frame of point speed
    euro_beta: float = 5.0
    #: cut-off of the filter's speed estimate, cycles per frame
    euro_d_cutoff: float = 0.05
    #: (starts, spread, combine, max_start_spread: defaults chosen on short_hamilton_clip.mp4; docs/landmarks.md)
    #: start boxes on each box the tracker places (odd: the box and pairs of opposite perturbations,
    #: :func:`start_boxes`; 1: the box alone); a detector's box always gets one
    starts: int = 5
    #: size of each perturbation: a shift of the box by this fraction of its side, or a change of its
    #: side by the factor exp(+-spread), or a mix of the two of the same length
    spread: float = 0.04
    #: how the K shapes become the frame's: "mean", or "median" (coordinate-wise, RCPR's rule)
    combine: str = "mean"
    #: the quality check also fails when the K shapes' RMS distance from the frame's shape exceeds this
    #: fraction of the inter-ocular distance (starts that disagree: RCPR's failure signal; 0: not checked)
    max_start_spread: float = 0.08

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for f in fields(self):
            object.__setattr__(self, f.name, parse_option_value(hints[f.name], getattr(self, f.name),
                                                                where=f"tracking.{f.name}"))
        check_range("tracking.max_residual", self.max_residual, 0, 10, low_open=True)
        check_range("tracking.max_scale_change", self.max_scale_change, 0, 10, low_open=True)
        check_range("tracking.min_inside", self.min_inside, 0, 1)
        check_range("tracking.check_every", self.check_every, 0, 1_000_000, integer=True)
        check_range("tracking.min_iou", self.min_iou, 0, 1)
        check_range("tracking.smooth", self.smooth, 0, 1)
        if self.box not in BOX_RULES:
            raise ConfigError(f"tracking.box={self.box!r}: expected one of {', '.join(BOX_RULES)} "
                              "(e.g. -o tracking.box=fit)")
        check_range("tracking.hold", self.hold, 0, 1)
        check_range("tracking.euro_min_cutoff", self.euro_min_cutoff, 0, 0.5, low_open=True)
        check_range("tracking.euro_beta", self.euro_beta, 0, 1000)
        check_range("tracking.euro_d_cutoff", self.euro_d_cutoff, 0, 0.5, low_open=True)
        if not (type(self.starts) is int and 1 <= self.starts <= MAX_STARTS and self.starts % 2):
            raise ConfigError(f"tracking.starts={self.starts!r}: expected an odd integer in [1, {MAX_STARTS}] (the "
                              "box plus pairs of opposite perturbations; 1: off), e.g. -o tracking.starts=5")
        check_range("tracking.spread", self.spread, 0, 0.5, low_open=True)
        check_range("tracking.max_start_spread", self.max_start_spread, 0, 10)
        if self.combine not in COMBINE_RULES:
            raise ConfigError(f"tracking.combine={self.combine!r}: expected one of {', '.join(COMBINE_RULES)} "
                              "(e.g. -o tracking.combine=median)")

    @classmethod
    def from_options(cls, values: Any) -> "TrackerSettings":
        return settings_from_options(cls, "tracking", values)


#: the points whose frame places the next box: rigid ones (eyes, nose), so that speech and
#: expression do not move the box; schemes without them use every point
RIGID = ("left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer", "left_eye_centre",
         "right_eye_centre", "nose_tip", "subnasale")


def _scale(shape: np.ndarray) -> float:
    """RMS distance of the points to their centroid (rotation-invariant size)."""
    return float(np.sqrt(((shape - shape.mean(axis=0)) ** 2).sum(axis=1).mean()))


def start_boxes(box: np.ndarray, starts: int, spread: float) -> np.ndarray:
    """(``starts``, 4) start boxes for the multi-start rule: ``box`` itself, then pairs of opposite
    perturbations of it (``_PAIRS`` in order): the centre shifted by ``spread`` x the side (the box's
    geometric-mean side) along a direction, and the width and height scaled about the centre by
    exp(``spread`` x the direction's scale component).  Opposite pairs make the set symmetric, so
    averaging the K results has no built-in drift.  Deterministic: the same box gives the same set."""
    box = np.asarray(box, np.float64).reshape(4)
    if starts <= 1:
        return box[None].copy()
    d = _PAIRS[:(starts - 1) // 2]
    d = np.concatenate([d, -d])
    side = float(np.sqrt(np.prod(np.maximum(box[2:] - box[:2], 1e-6))))
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2
    c = centre + spread * side * d[:, :2]
    h = half * np.exp(spread * d[:, 2:3])
    return np.concatenate([box[None], np.concatenate([c - h, c + h], axis=1)])


def combine_shapes(shapes: np.ndarray, rule: str = "median") -> np.ndarray | None:
    """The frame's shape from K predictions (K, P, 2): coordinate-wise median (RCPR's output rule,
    Burgos-Artizzu et al. 2013) or mean over the finite ones; None when none is finite."""
    shapes = np.asarray(shapes, np.float64)
    ok = np.isfinite(shapes).all(axis=(1, 2))
    if not ok.any():
        return None
    return np.median(shapes[ok], axis=0) if rule == "median" else shapes[ok].mean(axis=0)


def rigid_points(scheme: str) -> Callable[[np.ndarray], np.ndarray]:
    """``shape -> the rigid points of it`` for ``scheme`` (every point when it names fewer than three)."""
    s = L.get_scheme(scheme)
    names = [n for n in RIGID if n in s.points]
    if len(names) < 3:
        return lambda shape: shape
    return lambda shape: s.semantic(shape, names)


class Follower:
    """Follows one face through frames; ``step(frame) -> (P, 2)`` points (NaN: none).

    After a step, ``found_by`` says where the shape came from: ``"detector"`` (a detection, or
    a re-detection after a failed check), ``"tracker"`` (the box from the previous shape) or
    ``None`` (no face)."""

    def __init__(self, landmarker: Any, detector: Any, num_points: int, iod: Any, track: bool,
                 settings: TrackerSettings = TrackerSettings(), rigid: Callable[[np.ndarray], np.ndarray] | None = None
                 ) -> None:
        self.lm, self.det, self.track, self.settings = landmarker, detector, track, settings
        self.num_points, self.iod = num_points, iod
        self.rigid = rigid or (lambda shape: shape)
        self.prev: np.ndarray | None = None
        self.box: np.ndarray | None = None
        self.rel: np.ndarray | None = None  # detector box in the shape's frame at the last detection
        self.anchor: np.ndarray | None = None  # the shape the current box was placed from (hysteresis)
        self.start: np.ndarray | None = None  # the start shape in box units ("fit")
        mean = getattr(landmarker, "mean_shape", None) if isinstance(landmarker, BoxInitialisedLandmarker) else None
        self.mean = None if mean is None or np.shape(mean) != (num_points, 2) else np.asarray(mean, np.float64)
        self.filter = (OneEuroFilter(settings.euro_min_cutoff, settings.euro_beta, settings.euro_d_cutoff)
                       if track and settings.one_euro else None)
        #: start boxes per landmarker call on a box placed by the tracker (multi-start: tracked frames only)
        self.starts = settings.starts if track else 1
        self.last_spread: float | None = None
        self.frame = 0
        self.detections = self.redetections = self.held = 0
        self.found_by: str | None = None

    def _pick(self, found: Any) -> np.ndarray | None:
        if len(found) == 0:
            return None
        boxes = np.asarray(found.boxes, np.float64)
        if self.box is not None:
            overlap = iou(self.box[None], boxes)[0]
            if overlap.max() > 0:
                return boxes[int(np.argmax(overlap))]
        return boxes[int(np.argmax(found.scores))]

    def _shape(self, image: np.ndarray, box: np.ndarray, starts: int = 1) -> np.ndarray | None:
        self.last_spread = None
        if starts > 1:
            return self._multi_shape(image, box, starts)
        shape = np.asarray(self.lm.predict(image, box[None]), np.float64).reshape(-1, 2)
        return shape if len(shape) == self.num_points and np.isfinite(shape).all() else None

    def _multi_shape(self, image: np.ndarray, box: np.ndarray, starts: int) -> np.ndarray | None:
        """The multi-start rule: the landmarker from each of :func:`start_boxes` (one call), the
        shapes combined by ``combine``; ``last_spread`` is their RMS distance from the result (px)."""
        st = self.settings
        boxes = start_boxes(box, starts, st.spread)
        shapes = np.asarray(self.lm.predict(image, boxes), np.float64)
        if shapes.size != len(boxes) * self.num_points * 2:
            return None
        shapes = shapes.reshape(len(boxes), self.num_points, 2)
        shape = combine_shapes(shapes, st.combine)
        if shape is not None:
            ok = np.isfinite(shapes).all(axis=(1, 2))
            self.last_spread = float(np.sqrt(((shapes[ok] - shape) ** 2).sum(axis=-1).mean()))
        return shape

    def _detect(self, image: np.ndarray, found: Any = None) -> np.ndarray | None:
        self.detections += 1
        self.found_by = "detector"
        box = self._pick(self.det.detect(image) if found is None else found)
        if box is None:
            return None
        shape = self._shape(image, box)  # a detector's box: one start, the same shape in both modes
        if shape is not None:
            c, s = self._frame(shape)
            self.rel, self.box, self.anchor = (box - np.tile(c, 2)) / s, box, shape
            side = float(np.sqrt(np.prod(np.maximum(box[2:] - box[:2], 1e-6))))  # one unit: fitted boxes are square
            self.start = self.mean if self.mean is not None else (shape - box[:2]) / side
            if self.filter is not None:
                self.filter.reset()  # a detection may be another face: a new track
        return shape

    def _plausible(self, shape: np.ndarray | None, image: np.ndarray) -> bool:
        st, prev = self.settings, self.prev
        if shape is None or prev is None:
            return False
        h, w = image.shape[:2]
        inside = ((shape >= 0) & (shape < [w, h])).all(axis=1).mean()
        ratio = _scale(shape) / max(_scale(prev), 1e-9)
        jitter = TM.frame_jitter(np.stack([prev, shape]), np.r_[1.0, self.iod(shape)])[1] / 100.0
        agree = (not st.max_start_spread or self.last_spread is None
                 or self.last_spread <= st.max_start_spread * self.iod(shape))
        return bool(inside >= st.min_inside and abs(np.log(ratio)) <= np.log1p(st.max_scale_change)
                    and jitter <= st.max_residual and agree)

    def _frame(self, shape: np.ndarray) -> tuple[np.ndarray, float]:
        anchor = self.rigid(shape)
        return anchor.mean(axis=0), max(_scale(anchor), 1e-6)

    def _still(self) -> bool:
        """Hysteresis: the rigid points moved and scaled by at most ``hold`` x inter-ocular distance
        since the current box was placed."""
        hold = self.settings.hold
        if not hold or self.box is None or self.anchor is None:
            return False
        (c0, s0), (c1, s1) = self._frame(self.anchor), self._frame(self.prev)
        unit = max(self.iod(self.prev), 1e-6)
        return bool(np.linalg.norm(c1 - c0) <= hold * unit and abs(s1 - s0) <= hold * unit)

    def _fit_box(self, shape: np.ndarray) -> np.ndarray:
        """The square box whose start shape fits ``shape`` best: the scale of the least-squares
        similarity from the start shape's rigid points to ``shape``'s (a box cannot rotate), placed so
        that the two rigid centroids coincide."""
        src, dst = self.rigid(self.start), self.rigid(shape)
        m = TM.similarity_fit(src, dst)
        side = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
        lo = dst.mean(axis=0) - side * src.mean(axis=0)
        return np.r_[lo, lo + side]

    def _next_box(self) -> tuple[np.ndarray, bool]:
        """(box for this frame, whether it is a new one)."""
        if self._still():
            return self.box, False
        if self.settings.box == "fit" and self.start is not None:
            box = self._fit_box(self.prev)
        else:
            c, s = self._frame(self.prev)
            box = np.tile(c, 2) + self.rel * s
        if self.box is not None and self.settings.smooth:
            box = self.settings.smooth * self.box + (1 - self.settings.smooth) * box
        return box, True

    def _follow(self, image: np.ndarray) -> np.ndarray | None:
        box, new = self._next_box()
        shape = self._shape(image, box, self.starts)
        self.found_by = "tracker"
        if self._plausible(shape, image):
            every = self.settings.check_every
            if every and self.frame % every == 0:
                found = self.det.detect(image)
                self.detections += 1
                if len(found) and iou(box[None], np.asarray(found.boxes, np.float64))[0].max() < self.settings.min_iou:
                    self.redetections += 1
                    return self._detect(image, found)
            if new:
                self.box, self.anchor = box, self.prev
            else:
                self.held += 1
            return shape
        self.redetections += 1
        return self._detect(image)

    def step(self, image: np.ndarray) -> np.ndarray:
        shape = self._follow(image) if self.track and self.prev is not None else self._detect(image)
        self.prev = shape
        self.frame += 1
        if shape is None:
            self.found_by = None
            if self.filter is not None:
                self.filter.reset()
            return np.full((self.num_points, 2), np.nan)
        if self.filter is not None:
            return self.filter(shape, self.iod(shape))
        return shape


def _video_frames(path: str, n: int) -> Iterator[np.ndarray]:
    """The first ``n`` frames of a video, decoded in order (RGB)."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        for _ in range(n):
            ok, frame = cap.read()
            if not ok:
                raise DataError(f"{path}: a frame could not be decoded (corrupt or shorter than listed)")
            yield np.ascontiguousarray(frame[:, :, ::-1])
    finally:
        cap.release()


def _open_frames(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef") -> dict[str, Any]:
    """Frames of ``ref`` in order: a landmark dataset (its samples by key, with ground truth) or
    a dataset of images (``video``: its frames)."""
    tasks = ctx.registry.get("dataset", ref.name).tasks
    data = open_dataset(ctx, spec, ref)
    if "landmarks" in tasks:
        lset = data.landmarks()
        samples = sorted(lset.samples, key=lambda s: s.key)
        keys = [s.key for s in samples]
        return {"n": len(keys), "frames": (lset.loader(k) for k in keys), "gts": np.stack([s.points for s in samples]),
                "scheme": lset.scheme, "source": ref.path, "annotated": True}
    if "train" not in tasks:
        raise HarnessError(f"dataset {ref.name!r} has no frames to track in; use --eval video=PATH or a landmark "
                           "clip such as --eval pts=300VW_CLIP")
    images = data.train_set()
    keys = list(images.keys)
    if not keys:
        raise DataError(f"{ref}: no frames")
    info = dict(images.info or {})
    frames = (_video_frames(str(info["source"]), len(keys)) if info.get("format") == "video" and info.get("source")
              else (images.loader(k) for k in keys))
    return {"n": len(keys), "frames": frames, "gts": None, "scheme": None, "source": ref.path, "annotated": False}


def _iod_kind(scheme: str) -> str:
    s = L.get_scheme(scheme)
    return "inter_ocular" if {"left_eye_outer", "right_eye_outer"} <= set(s.points) else "inter_pupil"


def shape_iod(scheme: str) -> Callable[[np.ndarray], float]:
    """``shape -> its inter-ocular distance`` (outer eye corners; eye centres where ``scheme`` has no
    corners): the unit of jitter, of the quality check and of ``hold``."""
    kind = _iod_kind(scheme)
    return lambda shape: float(L.normaliser(np.asarray(shape)[None], scheme, kind)[0])


def _strip_jpeg(frame: np.ndarray, shapes: dict[str, np.ndarray]) -> str:
    """A small JPEG (base64) of ``frame`` with each mode's points (tracking green, detection red)."""
    import cv2

    k = STRIP_WIDTH / frame.shape[1]
    small = cv2.resize(frame[:, :, ::-1], (STRIP_WIDTH, max(1, round(frame.shape[0] * k))),
                       interpolation=cv2.INTER_AREA)
    colours = {"tracking": (60, 200, 60), "detect_every_frame": (40, 40, 230)}
    for mode, pts in shapes.items():
        for x, y in pts[np.isfinite(pts).all(axis=1)] * k:
            cv2.circle(small, (int(round(x)), int(round(y))), 1, colours[mode], -1, lineType=cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def _follow_all(src: dict, followers: dict, progress: bool, name: str) -> dict[str, Any]:
    n = src["n"]
    shapes = {m: [] for m in followers}
    seconds = {m: 0.0 for m in followers}
    strip_at = set(np.linspace(0, n - 1, min(STRIP_FRAMES, n)).round().astype(int).tolist())
    strip = []
    for t, frame in enumerate(progress_iter(src["frames"], f"tracking ({name})", progress, unit="frame")):
        for mode, f in followers.items():
            t0 = time.perf_counter()
            shapes[mode].append(f.step(frame))
            seconds[mode] += time.perf_counter() - t0
        if t in strip_at:
            strip.append({"frame": t, "jpeg": _strip_jpeg(frame, {m: s[-1] for m, s in shapes.items()})})
    return {"shapes": {m: np.stack(s) for m, s in shapes.items()}, "seconds": seconds, "strip": strip}


def _mode_summary(mode: str, shapes: np.ndarray, seconds: float, follower: Follower, kind: str, scheme: str,
                  src: dict) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    found = np.isfinite(shapes).all(axis=(1, 2))
    norm = np.full(len(shapes), np.nan)
    if found.any():
        norm[found] = L.normaliser(shapes[found], scheme, kind)
    jitter = TM.frame_jitter(shapes, norm)
    cont = TM.continuity(found)
    row = {"mode": mode, "frames": len(shapes), "fps": len(shapes) / max(seconds, 1e-9),
           "ms_per_frame": 1000 * seconds / len(shapes),
           "jitter_mean": float(np.nanmean(jitter)) if np.isfinite(jitter).any() else None,
           "jitter_median": float(np.nanmedian(jitter)) if np.isfinite(jitter).any() else None,
           "with_shape": cont["with_shape"], "breaks": cont["breaks"], "longest_run": cont["longest_run"],
           "detector_calls": follower.detections, "redetections": follower.redetections,
           "boxes_held": follower.held}
    nme = None
    if src["gts"] is not None:
        nme = np.full(len(shapes), np.inf)
        if found.any():
            nme[found] = L.per_face_nme(shapes[found], src["gts"][found], scheme, src["scheme"], "inter_ocular")
        row["nme"] = float(nme[found].mean()) if found.any() else None
    return row, jitter, nme


def _box_text(settings: TrackerSettings, follower: Follower) -> str:
    """How the tracking follower placed its boxes, for the protocol."""
    if settings.box == "fit":
        start = ("the landmarker's mean shape (its model's start shape)" if follower.mean is not None
                 else "the shape found at the last detection, in its box's units")
        rule = f"square box fitted (similarity scale, rigid centroid) from {start} to the previous shape"
    else:
        rule = "the last detection's box carried in the frame of the previous shape's rigid points"
    hold = (f"; kept while the rigid points move and scale by at most {settings.hold} x inter-ocular since it was "
            "placed" if settings.hold else "; a new box every frame")
    return rule + hold


def _starts_text(settings: TrackerSettings) -> str:
    """The multi-start rule of the tracking follower, for the protocol."""
    k = settings.starts
    if k == 1:
        return "one start box per frame (the box alone; -o tracking.starts=K for K boxes)"
    check = (f"; the quality check fails when their RMS distance from it exceeds {settings.max_start_spread} x "
             "inter-ocular" if settings.max_start_spread else "")
    return (f"{k} start boxes on each box the tracker places: the box and {(k - 1) // 2} pairs of opposite "
            f"perturbations (centre shifted by {settings.spread} x the side and/or size scaled by "
            f"exp(+-{settings.spread})); the "
            f"frame's shape is the coordinate-wise {settings.combine} of the {k} shapes (multiple initialisations, "
            f"after RCPR: Burgos-Artizzu et al., ICCV 2013){check}; on a detector's box (detections, both "
            "followers) the box alone")


def _agreement(track: np.ndarray, detect: np.ndarray, kind: str, scheme: str) -> dict[str, Any]:
    """How far tracking's points are from detect-every-frame's (% of the latter's inter-ocular distance):
    large values mean the two follow different faces or tracking lost the face."""
    both = np.isfinite(track).all(axis=(1, 2)) & np.isfinite(detect).all(axis=(1, 2))
    if not both.any():
        return {"apart_median": None, "apart_over_50": None}
    d = 100 * np.linalg.norm(track[both] - detect[both], axis=-1).mean(axis=1) / L.normaliser(detect[both], scheme,
                                                                                               kind)
    return {"apart_median": float(np.median(d)), "apart_over_50": float((d > 50).mean())}


def _metrics(rows: dict[str, dict], kind: str) -> list[dict]:
    out = []
    for mode, r in rows.items():
        out += [Metric(f"jitter_{mode}", r["jitter_common"], "lower",
                       convention=f"mean frame-to-frame point motion after removing the best similarity "
                                  f"transform, % of the shape's {kind.replace('_', '-')} distance, over the "
                                  f"{r['common_frames']} frames where both followers have a shape on it and the "
                                  "frame before", meta={"headline": True} if mode == "tracking" else {}).to_dict(),
                Metric(f"fps_{mode}", r["fps"], "higher",
                       convention="frames / (detector + landmarker seconds); decoding excluded").to_dict(),
                Metric(f"frames_with_shape_{mode}", r["with_shape"], "higher",
                       convention="fraction of frames where the face was followed").to_dict()]
        if "nme" in r:
            out.append(Metric(f"nme_{mode}_inter_ocular", r["nme"], "lower",
                              convention="per-frame NME against the frame's annotation, mean over frames with a "
                                         "shape; outer eye corners").to_dict())
    return out


def _evaluate(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", lm: Any, lspec: Any, det: Any,
              det_name: str) -> dict:
    src = _open_frames(ctx, spec, ref)
    kind = _iod_kind(lspec.scheme)
    settings = TrackerSettings.from_options(spec.options.get("tracking"))
    followers = {m: Follower(lm, det, lspec.num_points, shape_iod(lspec.scheme), track=m == "tracking",
                             settings=settings, rigid=rigid_points(lspec.scheme)) for m in MODES}
    got = _follow_all(src, followers, ctx.progress, lspec.name)
    rows, curves, jitters = {}, {"jitter": {}, "nme": {}}, {}
    for mode in MODES:
        rows[mode], jitters[mode], nme = _mode_summary(mode, got["shapes"][mode], got["seconds"][mode],
                                                       followers[mode], kind, lspec.scheme, src)
        jitter = jitters[mode]
        frames = list(range(len(jitter)))
        curves["jitter"][mode] = {"x": frames, "y": [None if not np.isfinite(v) else float(v) for v in jitter]}
        if nme is not None:
            curves["nme"][mode] = {"x": frames, "y": [None if not np.isfinite(v) else float(v) for v in nme]}
    common = np.logical_and.reduce([np.isfinite(j) for j in jitters.values()])
    for mode in MODES:  # the comparison: frames where every follower has a shape on this frame and the last
        rows[mode]["jitter_common"] = float(jitters[mode][common].mean()) if common.any() else None
        rows[mode]["common_frames"] = int(common.sum())
    rows["tracking"].update(_agreement(got["shapes"]["tracking"], got["shapes"]["detect_every_frame"], kind,
                                       lspec.scheme))
    protocol = {"dataset": ref.name, "path": ref.path, "frames": src["n"], "detector": det_name,
                "landmarker_scheme": lspec.scheme, "annotated": src["annotated"],
                "jitter": f"% of the shape's {kind} distance after removing the best similarity transform "
                          "between consecutive frames (harness.metrics.tracking)",
                "fps": "detector + landmarker time per follower, same frames, one process; decoding excluded",
                "quality_check": asdict(settings), "face": "one face: the detection overlapping the last box most",
                "tracking_box": _box_text(settings, followers["tracking"]),
                "tracking_starts": _starts_text(settings),
                "smoothing": (f"one-euro filter of the tracking follower's reported points (min_cutoff "
                              f"{settings.euro_min_cutoff}, beta {settings.euro_beta}, d_cutoff "
                              f"{settings.euro_d_cutoff}; cycles per frame); detect-every-frame unfiltered"
                              if settings.one_euro else "none")}
    return {"protocol": protocol, "metrics": _metrics(rows, kind),
            "sections": {"tracking": {"rows": [rows[m] for m in MODES], "strip": got["strip"], "normaliser": kind,
                                      "detector": det_name, "frames": src["n"], "annotated": src["annotated"]}},
            "curves": {k: v for k, v in curves.items() if v}}


def summary_text(name: str, ref: "DataRef", result: dict) -> str:
    sec = result["sections"]["tracking"]
    lines = [f"{name} tracking on {ref.name} ({sec['frames']} frames, detector {sec['detector']}):",
             f"  {'mode':<20}{'fps':>8}{'jitter %':>10}{'(all)':>8}{'median':>8}{'with shape':>12}{'breaks':>8}"
             f"{'det calls':>10}"]
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for r in sec["rows"]:
        extra = f"  NME {r['nme']:.4f}" if r.get("nme") is not None else ""
        lines.append(f"  {r['mode']:<20}{r['fps']:>8.1f}{fmt(r['jitter_common']):>10}{fmt(r['jitter_mean']):>8}"
                     f"{fmt(r['jitter_median']):>8}{r['with_shape']:>12.0%}{r['breaks']:>8}{r['detector_calls']:>10}"
                     f"{extra}")
    lines.append(f"  jitter %: mean over the {sec['rows'][0]['common_frames']} frames both followers have (all: each "
                 f"follower's own frames); % of the {sec['normaliser']} distance")
    t = sec["rows"][0]
    proto = result.get("protocol", {})
    if proto.get("tracking_box"):
        lines.append(f"  tracking box: {proto['tracking_box']} ({t.get('boxes_held', 0)} frames kept the box); "
                     f"smoothing: {proto.get('smoothing', 'none')}")
    if proto.get("tracking_starts"):
        lines.append(f"  tracking starts: {proto['tracking_starts']}")
    if t.get("apart_median") is not None:
        lines.append(f"  tracking vs detect-every-frame points: median {t['apart_median']:.1f} % apart; "
                     f"{t['apart_over_50']:.0%} of frames over 50 % (different faces or a lost track)")
    return "\n".join(lines)


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    name = spec.components["landmarker"]
    lspec = ctx.registry.get("landmarker", name)
    det_name = choose_detector(ctx.registry, spec.components, "recognition", lspec)
    lm = ctx.registry.build("landmarker", name, spec.options.get(name))
    det = ctx.registry.build("detector", det_name, spec.options.get(det_name))
    results = []
    for ref in spec.eval:
        results.append(_evaluate(spec, ctx, ref, lm, lspec, det, det_name))
        ctx.log(summary_text(name, ref, results[-1]))
    out = results[0]
    if len(results) > 1:
        out["sections"]["other_evals"] = [{k: r[k] for k in ("protocol", "metrics")} for r in results[1:]]
    return out
