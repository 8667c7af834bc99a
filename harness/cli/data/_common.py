"""What several ``harness data`` subcommands share: the face cropper,
``--skip-bad`` bookkeeping, progress bars and the shared click options."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import click
import numpy as np

from harness.errors import ConfigError, DataError

__all__ = ["FaceCropper", "Skips", "common_options", "cropper_options", "encode", "identity_files",
           "image_items", "progress"]


def progress(iterable: Iterable, total: int | None, desc: str, enabled: bool | None) -> Iterable:
    """A tqdm bar on stderr (``enabled`` None: only when stderr is a terminal)."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", disable=(None if enabled is None else not enabled),
                file=sys.stderr, dynamic_ncols=True)


@dataclass
class Skips:
    """Items skipped under --skip-bad, with the first few reasons."""

    skip_bad: bool
    count: int = 0
    reasons: list[str] = field(default_factory=list)

    def handle(self, exc: DataError) -> None:
        if not self.skip_bad:
            raise exc
        self.count += 1
        if len(self.reasons) < 5:
            self.reasons.append(str(exc))

    def report(self) -> None:
        if self.count:
            click.echo(f"skipped {self.count} bad item(s) (--skip-bad); first: {self.reasons[0]}", err=True)


class FaceCropper:
    """Detect, align and crop one face per image, or centre-crop without detection.

    A detected face is cropped by :func:`harness.align.face_crop`, and an
    image where the detector finds none by :func:`harness.align.fallback_crop`,
    as in evaluation, so ``harness data`` crops equal evaluation crops.

    :param detector: a registry detector name, or ``none``.
    :param size: output side in pixels; 0 keeps the image as it is (``none`` only).
    :param crop: fraction of the shorter side kept by the centre crop of ``--detector none``.
    :param landmarker: a registry landmarker that places the five alignment points in the
        detector's box (``--landmarker``, as in evaluation: :func:`harness.tasks._faces.refine_one`),
        or ``none`` for the detector's own points.
    """

    def __init__(self, detector: str = "none", size: int = 112, crop: float = 1.0,
                 template: str = "arcface_112", landmarker: str = "none") -> None:
        self.detector_name = detector
        self.landmarker_name = landmarker
        self._landmarker = self._scheme = None
        self.size = size
        self.crop = crop
        self.template = template
        self.counts: Counter = Counter()
        self._detector = None
        if detector != "none":
            if size == 0:
                raise ConfigError("--size 0 keeps images uncropped and cannot be used with a detector; "
                                  "pass --detector none or a size such as 112")
            from harness.registry import get_registry

            self._detector = get_registry().build("detector", detector)
        if landmarker != "none":
            self._build_landmarker(landmarker)

    def _build_landmarker(self, name: str) -> None:
        from harness.registry import get_registry
        from harness.tasks._landmark_points import check_scheme

        if self._detector is None:
            raise ConfigError(f"--landmarker {name} places alignment points in a detected box and needs a detector "
                              "(e.g. --detector yunet); drop --landmarker with --detector none")
        spec = get_registry().get("landmarker", name)
        check_scheme(spec.scheme, name)
        self._landmarker, self._scheme = get_registry().build("landmarker", name), spec.scheme

    @property
    def aligned(self) -> str | None:
        if self.size == 0:
            return None
        return self.template if self.detector_name != "none" else None

    def _resize(self, image: np.ndarray) -> np.ndarray:
        from harness.align import resize_to

        if self.size:
            image = resize_to(image, (self.size, self.size))
        return np.ascontiguousarray(image)

    def centre(self, image: np.ndarray) -> np.ndarray:
        from harness.align import fallback_crop

        return self._resize(fallback_crop(image, self.template, fraction=self.crop))

    def detect_crop(self, image: np.ndarray, min_score: float | None = None,
                    upright: bool = False) -> tuple[np.ndarray | None, Any]:
        """(crop, (detections, index)) for the chosen face, or (None, detections) when none is found.

        :param min_score: ignore detections scoring below this.
        :param upright: with landmarks, ignore faces that are not upright (the
            eyes-to-mouth direction more than 45 degrees from straight down).
        """
        from harness.align import choose_face, face_crop
        from harness.types import Detections

        det = self._detector.detect(image)
        keep = np.ones(len(det), bool)
        if min_score is not None:
            keep &= det.scores >= min_score
        if upright and det.landmarks is not None and len(det):
            keep &= _upright(det.landmarks)
        if not keep.all():
            det = Detections(det.boxes[keep], det.scores[keep],
                             det.landmarks[keep] if det.landmarks is not None else None)
        i = choose_face(det, image.shape)
        if i is None:
            return None, det
        points = det.landmarks[i] if det.landmarks is not None else None
        if self._landmarker is not None:  # the evaluation's rule: the landmarker's points in the chosen box
            from harness.tasks._faces import LANDMARKER_MISS, refine_one

            own = np.full((5, 2), np.nan, np.float32) if points is None else points
            row = refine_one(self._landmarker, image, (det.boxes[i], own, True, len(det)), self._scheme)
            points = row[1]
            if row[LANDMARKER_MISS]:  # counted, as evaluation counts them (protocol.landmarker_misses)
                self.counts["landmarker_missed_kept_detector_points"] += 1
        crop = face_crop(image, (self.size, self.size), self.template, box=det.boxes[i], landmarks=points)
        return np.ascontiguousarray(crop), (det, i)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.size == 0:
            self.counts["kept"] += 1
            return image
        if self._detector is None:
            self.counts["centre_crop"] += 1
            return self.centre(image)
        crop, _ = self.detect_crop(image)
        if crop is None:  # the fallback evaluation uses too (harness.tasks._faces.make_crops)
            from harness.align import fallback_crop

            self.counts["no_face_centre_crop"] += 1
            return self._resize(fallback_crop(image, self.template))
        self.counts["detected"] += 1
        return crop

    def summary(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) or "nothing processed"


def _upright(landmarks: np.ndarray) -> np.ndarray:
    """(N,) bool: the eyes-to-mouth direction is within 45 degrees of image-down."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    eyes = lm[:, :2].mean(axis=1)
    mouth = lm[:, 3:].mean(axis=1)
    d = mouth - eyes
    return d[:, 1] > np.abs(d[:, 0])


def encode(image: np.ndarray, encoding: str, quality: int) -> bytes:
    from harness.formats.images import encode_image

    return encode_image(image, ".png" if encoding == "png" else ".jpg", quality=quality)


def image_items(files: list[tuple[int, Path]], cropper: FaceCropper, encoding: str, quality: int,
                skips: Skips, show: bool | None, desc: str) -> Iterator[tuple[int, bytes]]:
    """(label, encoded bytes) for each file, cropped and encoded; bad files go to ``skips``."""
    from harness.formats.images import decode_image

    for label, path in progress(files, len(files), desc, show):
        try:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
            image = decode_image(raw, where=str(path))
            if encoding == "original":
                yield label, raw
            else:
                yield label, encode(cropper(image), encoding, quality)
        except DataError as exc:
            skips.handle(exc)


def cropper_options(f):
    f = click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100),
                     help="JPEG quality when --encoding jpg.")(f)
    f = click.option("--crop", default=1.0, show_default=True, type=click.FloatRange(0.05, 1.0),
                     help="Without detection: fraction of the shorter side kept (centre crop).")(f)
    f = click.option("--detector", default="none", show_default=True,
                     help="Registry detector used to find and align faces (e.g. mtcnn, retinaface, "
                          "yunet, haar), or 'none' to centre-crop without detection.")(f)
    f = click.option("--landmarker", default="none", show_default=True,
                     help="Registry landmarker that places the five alignment points in the detector's box "
                          "(e.g. dlib_68, dlib_5), or 'none' for the detector's own points.")(f)
    f = click.option("--size", default=112, show_default=True, type=click.IntRange(0, 4096),
                     help="Output crop side in pixels (arcface_112 alignment, resized); 0 keeps "
                          "images as they are.")(f)
    return f


def common_options(f):
    f = click.option("--progress/--no-progress", default=None,
                     help="Show a progress bar (default: when stderr is a terminal).")(f)
    f = click.option("--skip-bad", is_flag=True, help="Continue past corrupt or missing items and "
                     "report how many were skipped.")(f)
    return f


def identity_files(root: Path) -> tuple[list[str], list[tuple[int, Path]]]:
    """(identity names, (label, file) for every image) of an identity-folder tree."""
    from harness.formats.folders import scan_identities

    ids = scan_identities(root)
    files = [(label, f) for label, ident in enumerate(ids) for f in ident.files]
    return [i.name for i in ids], files
