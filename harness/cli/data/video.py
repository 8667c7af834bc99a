"""``harness data video``: a video -> face crops (+ faces.csv with each frame's orientation).

Two ways to find the face of each kept frame:

* detect every frame (the default): the detector in every orientation, the face nearest the
  centre, aligned on the detector's points or, with ``--landmarker``, on the landmarker's;
* ``--track`` (needs ``--landmarker``): the detector finds the face (and its orientation) once,
  then the landmarker follows it from frame to frame with the tracker of ``--protocol tracking``
  (:class:`harness.tasks.tracking.Follower`, its default settings), re-detecting when the
  tracking-quality check fails; each crop is aligned on the five points of the tracked shape.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.cli.data._common import FaceCropper, _upright, common_options
from harness.cli.data._common import progress as _progress
from harness.errors import ConfigError, DataError

__all__ = ["command"]

_ROTATIONS = ("none", "left90", "right90", "180")
_FIELDS = ["frame", "file", "orientation", "score", "x1", "y1", "x2", "y2", "found_by"]


def _rotate(frame: np.ndarray, how: str) -> np.ndarray:
    import cv2

    code = {"left90": cv2.ROTATE_90_COUNTERCLOCKWISE, "right90": cv2.ROTATE_90_CLOCKWISE,
            "180": cv2.ROTATE_180}.get(how)
    return frame if code is None else np.ascontiguousarray(cv2.rotate(frame, code))


def _best_face(cropper: FaceCropper, rgb: np.ndarray, min_score: float | None, orientation: str) -> tuple | None:
    """(rotation, crop, (detections, index), score) of the face kept in one frame, or None."""
    found = None
    for how in _ROTATIONS:
        crop, det = cropper.detect_crop(_rotate(rgb, how), min_score, upright=True)
        if crop is None:
            continue
        score = float(det[0].scores[det[1]])
        if found is None or score > found[3]:
            found = (how, crop, det, score)
        if orientation == "first":
            break
    return found


def _box_fields(box: Any) -> dict[str, str]:
    return {k: f"{float(v):.1f}" for k, v in zip(("x1", "y1", "x2", "y2"), box)}


_NO_FACE = {"file": "", "orientation": "noface", "score": "", "x1": "", "y1": "", "x2": "", "y2": "", "found_by": ""}


class _Detected:
    """Detect every frame: the face of :func:`_best_face` (every orientation searched)."""

    def __init__(self, cropper: FaceCropper, min_score: float | None, orientation: str) -> None:
        self.cropper, self.min_score, self.orientation = cropper, min_score, orientation

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, str]] | None:
        found = _best_face(self.cropper, rgb, self.min_score, self.orientation)
        if found is None:
            return None
        how, crop, (dets, i), _score = found
        return crop, {"orientation": how, "score": f"{float(dets.scores[i]):.4f}", **_box_fields(dets.boxes[i]),
                      "found_by": "detector"}


class _Filtered:
    """The detector as the tracker sees it: detections under ``--min-score`` and, with landmarks,
    faces that are not upright are dropped, as in detect-every-frame."""

    def __init__(self, detector: Any, min_score: float | None) -> None:
        self.detector, self.min_score = detector, min_score

    def detect(self, image: np.ndarray) -> Any:
        from harness.types import Detections

        det = self.detector.detect(image)
        keep = np.ones(len(det), bool)
        if self.min_score is not None:
            keep &= det.scores >= self.min_score
        if det.landmarks is not None and len(det):
            keep &= _upright(det.landmarks)
        if keep.all():
            return det
        return Detections(det.boxes[keep], det.scores[keep], det.landmarks[keep] if det.landmarks is not None else None)


class _Tracked:
    """``--track``: the orientation comes from the first frame with a face (all four searched), then
    the tracker follows the face in that orientation; crops are aligned on the five points of each
    tracked shape (:func:`harness.tasks._landmark_points.alignment_points`)."""

    def __init__(self, cropper: FaceCropper, landmarker: str, detector: str, min_score: float | None,
                 orientation: str) -> None:
        from harness.registry import get_registry
        from harness.tasks._landmark_points import check_scheme
        from harness.tasks.tracking import Follower, rigid_points, shape_iod

        reg = get_registry()
        spec = reg.get("landmarker", landmarker)
        check_scheme(spec.scheme, landmarker)
        self.scheme, self.cropper, self.min_score, self.orientation = spec.scheme, cropper, min_score, orientation
        follow = _Filtered(reg.build("detector", detector), min_score)
        self.follower = Follower(reg.build("landmarker", landmarker), follow, spec.num_points, shape_iod(spec.scheme),
                                 track=True, rigid=rigid_points(spec.scheme))
        self.how: str | None = None

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, dict[str, str]] | None:
        from harness.align import face_crop
        from harness.tasks._landmark_points import alignment_points

        if self.how is None:
            found = _best_face(self.cropper, rgb, self.min_score, self.orientation)
            if found is None:
                return None
            self.how = found[0]
        upright = _rotate(rgb, self.how)
        shape = self.follower.step(upright)
        if not np.isfinite(shape).all():
            return None
        size = (self.cropper.size, self.cropper.size)
        five = alignment_points(shape, self.scheme)
        crop = face_crop(upright, size, self.cropper.template, landmarks=five, box=self.follower.box)
        return np.ascontiguousarray(crop), {"orientation": self.how, "score": "", **_box_fields(self.follower.box),
                                            "found_by": self.follower.found_by or ""}


def _extract(cap: Any, tmp: Path, find: Any, every: int, show: bool | None,
             max_frames: int | None = None) -> tuple[list[dict], Counter, int]:
    """Write the crops of every ``every``-th frame (of the first ``max_frames``) into ``tmp``;
    (csv rows, counts, frames read)."""
    import cv2

    from harness.formats.images import encode_image

    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    rows: list[dict] = []
    counts: Counter = Counter()
    index = 0
    for _ in _progress(range(total) if total else iter(int, 1), total, "frames", show):
        if max_frames and index >= max_frames:
            break
        ok, frame = cap.read()
        if not ok:
            break
        if index % every:
            index += 1
            continue
        found = find(np.ascontiguousarray(frame[:, :, ::-1]))
        if found is None:
            rows.append({**_NO_FACE, "frame": index})
            counts["noface"] += 1
        else:
            crop, fields = found
            name = f"frame_{index:06d}.jpg"
            (tmp / name).write_bytes(encode_image(crop, ".jpg", quality=95))
            rows.append({"frame": index, "file": name, **fields})
            counts[fields["orientation"]] += 1
        index += 1
    return rows, counts, index


@click.command("video")
@click.argument("video", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the face crops and faces.csv.")
@click.option("--every", default=1, show_default=True, type=click.IntRange(1), help="Use every N-th frame.")
@click.option("--detector", default="haar", show_default=True, help="Registry detector (haar, yunet, mtcnn, ...).")
@click.option("--size", default=112, show_default=True, type=click.IntRange(16, 4096))
@click.option("--min-score", default=None, type=float,
              help="Ignore detections scoring below this (detector's own scale).")
@click.option("--orientation", type=click.Choice(["best", "first"]), default="best", show_default=True,
              help="'first': keep the first of upright, 90 left, 90 right, 180 that finds a face; "
                   "'best': try all four and keep the highest-scoring face.")
@click.option("--landmarker", default="none", show_default=True,
              help="Registry landmarker placing the five alignment points in the detector's box (dlib_68, dlib_5, "
                   "...), or 'none' for the detector's points.  Needed by --track.")
@click.option("--track/--detect-every-frame", default=False, show_default=True,
              help="Follow the face with the landmarker from frame to frame (the tracker of --protocol tracking; "
                   "the detector runs on the first frame and when the tracking check fails) instead of detecting "
                   "every frame.")
@click.option("--max-frames", default=None, type=click.IntRange(1), help="Read at most this many frames.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@common_options
def command(video: Path, output: Path, every: int, detector: str, size: int, min_score: float | None,
            orientation: str, landmarker: str, track: bool, max_frames: int | None, overwrite: bool, skip_bad: bool,
            progress: bool | None) -> None:
    """Extract face crops from VIDEO.

    Each kept frame is searched upright and rotated 90 degrees left, 90
    degrees right and 180 degrees (phone videos are often stored sideways).
    With --orientation first a rotation is tried only when the previous
    orientations found no face; with best (default) all four are tried and the
    highest-scoring face wins, since detectors also fire, weakly, on sideways
    faces.  The orientation kept is written to faces.csv (frame, file,
    orientation, score, box in the rotated frame).  Frames without a face in any orientation are listed with
    orientation 'noface'.  With a landmark detector (yunet, mtcnn,
    retinaface) a face only counts when it is upright (eyes above the mouth),
    so a sideways face found in the unrotated frame still triggers the fix.

    With --track (and a --landmarker such as dlib_68) the orientation is
    found on the first frame with a face, and from then on the landmarker
    follows the face (re-detecting when the tracking check fails) and each
    crop is aligned on the tracked points; faces.csv says per frame whether
    the detector or the tracker found the face (found_by).  Detecting every
    frame stays the default: it finds every orientation and the face nearest
    the centre of each frame, and needs no landmarker; --track is faster and
    follows one face through frames where the detector misses it.
    """
    import cv2

    from harness.atomic import atomic_dir

    if detector == "none":
        raise ConfigError("harness data video needs a detector (e.g. --detector haar or yunet)")
    if track and landmarker == "none":
        raise ConfigError("--track follows the face with a landmarker: add --landmarker NAME (e.g. dlib_68)")
    cropper = FaceCropper(detector, size, landmarker="none" if track else landmarker)
    find = (_Tracked(cropper, landmarker, detector, min_score, orientation) if track
            else _Detected(cropper, min_score, orientation))
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DataError(f"{video}: OpenCV cannot open this video (corrupt or unsupported codec)")
    try:
        with atomic_dir(output, overwrite=overwrite) as tmp:
            rows, counts, frames = _extract(cap, tmp, find, every, progress, max_frames)
            if frames == 0:
                raise DataError(f"{video}: no frame could be read (corrupt or empty video)")
            with open(tmp / "faces.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=_FIELDS)
                w.writeheader()
                w.writerows(rows)
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        cap.release()
    faces = sum(v for k, v in counts.items() if k != "noface")
    by = Counter(r["found_by"] for r in rows if r["found_by"])
    how = f"; found by {', '.join(f'{k}: {v}' for k, v in sorted(by.items()))}" if track else ""
    click.echo(f"wrote {output}: {faces} face crops from {len(rows)} frames "
               f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}{how}); orientations in faces.csv")
