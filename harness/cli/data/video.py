"""``harness data video``: a video -> face crops (+ faces.csv with each frame's orientation)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.cli.data._common import FaceCropper, common_options
from harness.cli.data._common import progress as _progress
from harness.errors import ConfigError, DataError

__all__ = ["command"]

_ROTATIONS = ("none", "left90", "right90", "180")
_FIELDS = ["frame", "file", "orientation", "score", "x1", "y1", "x2", "y2"]


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


def _face_row(index: int, name: str, how: str, dets: Any, i: int) -> dict[str, Any]:
    box = dets.boxes[i]
    return {"frame": index, "file": name, "orientation": how, "score": f"{float(dets.scores[i]):.4f}",
            **{k: f"{float(v):.1f}" for k, v in zip(("x1", "y1", "x2", "y2"), box)}}


def _extract(cap: Any, tmp: Path, cropper: FaceCropper, every: int, min_score: float | None, orientation: str,
             show: bool | None) -> tuple[list[dict], Counter, int]:
    """Write the crops of every ``every``-th frame into ``tmp``; (csv rows, counts, frames read)."""
    import cv2

    from harness.formats.images import encode_image

    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    rows: list[dict] = []
    counts: Counter = Counter()
    index = 0
    for _ in _progress(range(total) if total else iter(int, 1), total, "frames", show):
        ok, frame = cap.read()
        if not ok:
            break
        if index % every:
            index += 1
            continue
        found = _best_face(cropper, np.ascontiguousarray(frame[:, :, ::-1]), min_score, orientation)
        if found is None:
            rows.append({"frame": index, "file": "", "orientation": "noface", "score": "",
                         "x1": "", "y1": "", "x2": "", "y2": ""})
            counts["noface"] += 1
        else:
            how, crop, (dets, i), _score = found
            name = f"frame_{index:06d}.jpg"
            (tmp / name).write_bytes(encode_image(crop, ".jpg", quality=95))
            rows.append(_face_row(index, name, how, dets, i))
            counts[how] += 1
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
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@common_options
def command(video: Path, output: Path, every: int, detector: str, size: int, min_score: float | None,
            orientation: str, overwrite: bool, skip_bad: bool, progress: bool | None) -> None:
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
    """
    import cv2

    from harness.atomic import atomic_dir

    if detector == "none":
        raise ConfigError("harness data video needs a detector (e.g. --detector haar or yunet)")
    cropper = FaceCropper(detector, size)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DataError(f"{video}: OpenCV cannot open this video (corrupt or unsupported codec)")
    try:
        with atomic_dir(output, overwrite=overwrite) as tmp:
            rows, counts, frames = _extract(cap, tmp, cropper, every, min_score, orientation, progress)
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
    click.echo(f"wrote {output}: {faces} face crops from {len(rows)} frames "
               f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}); orientations in faces.csv")
