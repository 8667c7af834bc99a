"""``harness data``: make, convert and inspect face datasets.

\b
  pairs     identity folders -> LFW-format pairs.txt
  bin       images + pairs   -> insightface verification .bin
  rec       identity folders -> MXNet RecordIO train.rec/.idx (insightface)
  tfrecord  identity folders -> TFRecord of tf.train.Example
  video     a video          -> face crops (+ orientation CSV)
  mesh      face images      -> ID-photo mesh overlays + masks
  inspect   any of the above -> format, identities, images, sizes, corrupt files

Every writer writes to a temporary name and renames it when complete, so an
interrupted command never leaves a half-written output.  ``--skip-bad``
continues past corrupt or missing items and reports how many were skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import click
import numpy as np

from harness.errors import ConfigError, DataError

__all__ = ["command"]

_VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


# ------------------------------------------------------------------ helpers
def _progress(iterable: Iterable, total: int | None, desc: str, enabled: bool | None) -> Iterable:
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

    :param detector: a registry detector name, or ``none``.
    :param size: output side in pixels; 0 keeps the image as it is (``none`` only).
    :param crop: fraction of the shorter side kept by the no-detection crop.
    """

    def __init__(self, detector: str = "none", size: int = 112, crop: float = 1.0,
                 template: str = "arcface_112") -> None:
        self.detector_name = detector
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

    @property
    def aligned(self) -> str | None:
        if self.size == 0:
            return None
        return self.template if self.detector_name != "none" else None

    def _resize(self, image: np.ndarray) -> np.ndarray:
        import cv2

        if self.size and image.shape[:2] != (self.size, self.size):
            interp = cv2.INTER_AREA if image.shape[0] > self.size else cv2.INTER_LINEAR
            image = cv2.resize(image, (self.size, self.size), interpolation=interp)
        return np.ascontiguousarray(image)

    def centre(self, image: np.ndarray) -> np.ndarray:
        from harness.align import fallback_crop

        return self._resize(fallback_crop(image, self.template, fraction=self.crop))

    def box_crop(self, image: np.ndarray, box: np.ndarray, margin: float = 0.1) -> np.ndarray:
        """A square crop around ``box`` (for detectors without landmarks)."""
        import cv2

        x1, y1, x2, y2 = [float(v) for v in box]
        side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        out = self.size or 112
        scale = out / max(side, 1e-6)
        m = np.array([[scale, 0, out / 2 - cx * scale], [0, scale, out / 2 - cy * scale]])
        return cv2.warpAffine(np.ascontiguousarray(image), m, (out, out), flags=cv2.INTER_LINEAR)

    def detect_crop(self, image: np.ndarray, min_score: float | None = None,
                    upright: bool = False) -> tuple[np.ndarray | None, Any]:
        """(crop, (detections, index)) for the chosen face, or (None, detections) when none is found.

        :param min_score: ignore detections scoring below this.
        :param upright: with landmarks, ignore faces that are not upright (the
            eyes-to-mouth direction more than 45 degrees from straight down).
        """
        from harness.align import align, choose_face
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
        if det.landmarks is not None:
            crop = align(image, det.landmarks[i], self.template)
            return self._resize(crop), (det, i)
        return self._resize(self.box_crop(image, det.boxes[i])), (det, i)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.size == 0:
            self.counts["kept"] += 1
            return image
        if self._detector is None:
            self.counts["centre_crop"] += 1
            return self.centre(image)
        crop, _ = self.detect_crop(image)
        if crop is None:
            self.counts["no_face_centre_crop"] += 1
            return self.centre(image)
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


def _encode(image: np.ndarray, encoding: str, quality: int) -> bytes:
    from harness.formats.images import encode_image

    return encode_image(image, ".png" if encoding == "png" else ".jpg", quality=quality)


def _image_items(files: list[tuple[int, Path]], cropper: FaceCropper, encoding: str, quality: int,
                 skips: Skips, progress: bool | None, desc: str) -> Iterator[tuple[int, bytes]]:
    """(label, encoded bytes) for each file, cropped and encoded; bad files go to ``skips``."""
    from harness.formats.images import decode_image

    for label, path in _progress(files, len(files), desc, progress):
        try:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
            image = decode_image(raw, where=str(path))
            if encoding == "original":
                yield label, raw
            else:
                yield label, _encode(cropper(image), encoding, quality)
        except DataError as exc:
            skips.handle(exc)


def _cropper_options(f):
    f = click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100),
                     help="JPEG quality when --encoding jpg.")(f)
    f = click.option("--crop", default=1.0, show_default=True, type=click.FloatRange(0.05, 1.0),
                     help="Without detection: fraction of the shorter side kept (centre crop).")(f)
    f = click.option("--detector", default="none", show_default=True,
                     help="Registry detector used to find and align faces (e.g. mtcnn, retinaface, "
                          "yunet, haar), or 'none' to centre-crop without detection.")(f)
    f = click.option("--size", default=112, show_default=True, type=click.IntRange(0, 4096),
                     help="Output crop side in pixels (arcface_112 alignment, resized); 0 keeps "
                          "images as they are.")(f)
    return f


def _common_options(f):
    f = click.option("--progress/--no-progress", default=None,
                     help="Show a progress bar (default: when stderr is a terminal).")(f)
    f = click.option("--skip-bad", is_flag=True, help="Continue past corrupt or missing items and "
                     "report how many were skipped.")(f)
    return f


def _identity_files(root: Path) -> tuple[list[str], list[tuple[int, Path]]]:
    from harness.formats.folders import scan_identities

    ids = scan_identities(root)
    files = [(label, f) for label, ident in enumerate(ids) for f in ident.files]
    return [i.name for i in ids], files


# ------------------------------------------------------------------- group
@click.group(name="data")
def command() -> None:
    """Make, convert and inspect face datasets (pairs, .bin, .rec, TFRecord, video, mesh)."""


# ------------------------------------------------------------------- pairs
@command.command("pairs")
@click.argument("identity_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The pairs file to write (LFW format).")
@click.option("--folds", default=10, show_default=True, type=click.IntRange(1))
@click.option("--pairs-per-fold", default=300, show_default=True, type=click.IntRange(1),
              help="Genuine pairs per fold (and as many impostor pairs).")
@click.option("--seed", default=0, show_default=True, type=int)
def pairs_cmd(identity_dir: Path, output: Path, folds: int, pairs_per_fold: int, seed: int) -> None:
    """Generate LFW-format verification pairs over IDENTITY_DIR.

    Each fold holds PAIRS_PER_FOLD genuine pairs then as many impostor pairs;
    identities are split between folds so none repeats across folds where the
    data allows it.  Image numbers are the files' numbers: Name_0001.jpg -> 1
    (LFW), 7.pgm -> 7 (AT&T).
    """
    from harness.formats.folders import scan_identities
    from harness.formats.pairs import generate_pairs, parse_pairs, write_pairs

    ids = scan_identities(identity_dir)
    numbers: dict[str, list[int]] = {}
    unnumbered = 0
    for ident in ids:
        nums = [n for n in ident.numbers if n is not None]
        unnumbered += len(ident.numbers) - len(nums)
        if nums:
            numbers[ident.name] = nums
    if unnumbered:
        click.echo(f"note: {unnumbered} image(s) have no number in their file name "
                   "(expected Name_0001.jpg or 1.pgm) and cannot appear in pairs", err=True)
    folds_out, warnings = generate_pairs(numbers, folds, pairs_per_fold, seed)
    write_pairs(output, folds_out)
    check = parse_pairs(output)  # read back: the file we wrote must parse
    for w in warnings:
        click.echo(f"note: {w}", err=True)
    n_ids = len({n for p in check.pairs for n in (p.name1, p.name2)})
    click.echo(f"wrote {output}: {check.folds} folds x ({check.per_fold} genuine + {check.per_fold} impostor) "
               f"= {len(check.pairs)} pairs over {n_ids} identities")


# --------------------------------------------------------------------- bin
@command.command("bin")
@click.argument("image_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .bin file to write.")
@_cropper_options
@click.option("--encoding", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True)
@click.option("--fold", "folds", multiple=True, type=click.IntRange(1),
              help="Only these folds of the pairs file (1-based; repeatable). Default: all.")
@_common_options
def bin_cmd(image_dir: Path, pairs_file: Path, output: Path, size: int, detector: str, crop: float,
            quality: int, encoding: str, folds: tuple[int, ...], skip_bad: bool, progress: bool | None) -> None:
    """Write an insightface verification .bin from IMAGE_DIR and an LFW PAIRS_FILE.

    The .bin is a pickle of (list of encoded crops, list of issame bools);
    pair i is crops 2i and 2i+1, in pairs-file order.
    """
    from harness.formats.folders import resolve_image
    from harness.formats.images import read_image
    from harness.formats.insightface_bin import write_bin
    from harness.formats.pairs import parse_pairs

    parsed = parse_pairs(pairs_file, skip_bad=skip_bad)
    skips = Skips(skip_bad)
    for msg in parsed.skipped:
        skips.handle(DataError(msg))
    chosen = {f - 1 for f in folds}
    pairs = [p for p in parsed.pairs if not chosen or p.fold in chosen]
    if not pairs:
        raise DataError(f"{pairs_file}: no pairs in the chosen folds {sorted(folds)}")
    cropper = FaceCropper(detector, size, crop)
    cache: dict[Path, bytes] = {}
    blobs: list[bytes] = []
    issame: list[bool] = []
    for p in _progress(pairs, len(pairs), "pairs", progress):
        where = f"{pairs_file}, line {p.line}"
        try:
            encoded = []
            for name, n in ((p.name1, p.n1), (p.name2, p.n2)):
                f = resolve_image(image_dir, name, n, where)
                if f not in cache:
                    cache[f] = _encode(cropper(read_image(f)), encoding, quality)
                encoded.append(cache[f])
        except DataError as exc:
            skips.handle(exc)
            continue
        blobs.extend(encoded)
        issame.append(p.issame)
    write_bin(output, blobs, issame)
    skips.report()
    click.echo(f"wrote {output}: {len(issame)} pairs ({sum(issame)} genuine), {len(cache)} distinct images "
               f"({cropper.summary()})")


# --------------------------------------------------------------------- rec
def _rec_prefix(output: Path) -> Path:
    if output.suffix in (".rec", ".idx"):
        return output.with_suffix("")
    if output.is_dir() or str(output).endswith(os.sep):
        return output / "train"
    return output


@command.command("rec")
@click.argument("identity_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output prefix: 'out/train' writes out/train.rec, out/train.idx and out/property.")
@_cropper_options
@click.option("--encoding", type=click.Choice(["jpg", "png", "original"]), default="jpg", show_default=True,
              help="How images are stored; 'original' copies each file's bytes unchanged (needs --size 0).")
@_common_options
def rec_cmd(identity_dir: Path, output: Path, size: int, detector: str, crop: float, quality: int,
            encoding: str, skip_bad: bool, progress: bool | None) -> None:
    """Pack IDENTITY_DIR into an insightface-compatible MXNet RecordIO train.rec/.idx.

    Record 0 is the insightface header (flag 2, label = first identity record,
    end); records 1..N are the images (label = class id, grouped by identity);
    records N+1..N+K hold each identity's image range.  No mxnet needed.
    """
    from harness.formats.recordio import write_insightface_rec

    if encoding == "original" and size != 0:
        raise ConfigError("--encoding original stores the files unchanged and needs --size 0")
    names, files = _identity_files(identity_dir)
    cropper = FaceCropper(detector, size, crop)
    skips = Skips(skip_bad)
    prefix = _rec_prefix(output)
    shape = (size, size) if size else None
    summary = write_insightface_rec(prefix, _image_items(files, cropper, encoding, quality, skips, progress,
                                                         "rec"), len(names), shape)
    skips.report()
    click.echo(f"wrote {summary['rec']} (+ .idx{', property' if shape else ''}): {summary['images']} images, "
               f"{summary['identities']} identities ({cropper.summary()})")


# ---------------------------------------------------------------- tfrecord
@command.command("tfrecord")
@click.argument("identity_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@_cropper_options
@click.option("--encoding", type=click.Choice(["jpg", "png", "original"]), default="jpg", show_default=True)
@_common_options
def tfrecord_cmd(identity_dir: Path, output: Path, size: int, detector: str, crop: float, quality: int,
                 encoding: str, skip_bad: bool, progress: bool | None) -> None:
    """Pack IDENTITY_DIR into a TFRecord of tf.train.Example (no TensorFlow needed).

    Features: image/encoded (bytes), image/class/label (int64, by sorted
    identity name), image/format.
    """
    from harness.formats.tfrecord import write_tfrecord_images

    if encoding == "original" and size != 0:
        raise ConfigError("--encoding original stores the files unchanged and needs --size 0")
    names, files = _identity_files(identity_dir)
    cropper = FaceCropper(detector, size, crop)
    skips = Skips(skip_bad)
    fmt = "png" if encoding == "png" else "jpeg" if encoding == "jpg" else "original"
    n = write_tfrecord_images(output, _image_items(files, cropper, encoding, quality, skips, progress,
                                                   "tfrecord"), fmt=fmt)
    skips.report()
    click.echo(f"wrote {output}: {n} images, {len(names)} identities ({cropper.summary()})")


# ------------------------------------------------------------------- video
_ROTATIONS = ("none", "left90", "right90", "180")


def _rotate(frame: np.ndarray, how: str) -> np.ndarray:
    import cv2

    code = {"left90": cv2.ROTATE_90_COUNTERCLOCKWISE, "right90": cv2.ROTATE_90_CLOCKWISE,
            "180": cv2.ROTATE_180}.get(how)
    return frame if code is None else np.ascontiguousarray(cv2.rotate(frame, code))


@command.command("video")
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
@_common_options
def video_cmd(video: Path, output: Path, every: int, detector: str, size: int, min_score: float | None,
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
    from harness.formats.images import encode_image

    if detector == "none":
        raise ConfigError("harness data video needs a detector (e.g. --detector haar or yunet)")
    cropper = FaceCropper(detector, size)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise DataError(f"{video}: OpenCV cannot open this video (corrupt or unsupported codec)")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    rows: list[dict] = []
    counts: Counter = Counter()
    try:
        with atomic_dir(output, overwrite=overwrite) as tmp:
            bar = _progress(range(total) if total else iter(int, 1), total, "frames", progress)
            index = 0
            for _ in bar:
                ok, frame = cap.read()
                if not ok:
                    break
                if index % every:
                    index += 1
                    continue
                rgb = np.ascontiguousarray(frame[:, :, ::-1])
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
                if found is None:
                    rows.append({"frame": index, "file": "", "orientation": "noface", "score": "",
                                 "x1": "", "y1": "", "x2": "", "y2": ""})
                    counts["noface"] += 1
                else:
                    how, crop, (dets, i), _score = found
                    name = f"frame_{index:06d}.jpg"
                    (tmp / name).write_bytes(encode_image(crop, ".jpg", quality=95))
                    box = dets.boxes[i]
                    rows.append({"frame": index, "file": name, "orientation": how,
                                 "score": f"{float(dets.scores[i]):.4f}",
                                 **{k: f"{float(v):.1f}" for k, v in zip(("x1", "y1", "x2", "y2"), box)}})
                    counts[how] += 1
                index += 1
            if index == 0:
                raise DataError(f"{video}: no frame could be read (corrupt or empty video)")
            with open(tmp / "faces.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=["frame", "file", "orientation", "score", "x1", "y1", "x2", "y2"])
                w.writeheader()
                w.writerows(rows)
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        cap.release()
    faces = sum(v for k, v in counts.items() if k != "noface")
    click.echo(f"wrote {output}: {faces} face crops from {len(rows)} frames "
               f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}); orientations in faces.csv")


# -------------------------------------------------------------------- mesh
def _range(text: str | None, cast=float):
    if text is None:
        return None
    parts = [p for p in text.replace(":", ",").split(",") if p.strip()]
    try:
        vals = [cast(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected 'low,high' numbers") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or vals[0] > vals[1]:
        raise click.BadParameter(f"{text!r}: expected 'low,high' with low <= high")
    return tuple(vals)


@command.command("mesh")
@click.argument("faces_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--families", default=None, help="Line families, 'low,high' (default 2,2: a lattice).")
@click.option("--period", default=None, help="Line spacing in px at 112 px, 'low,high' (default 8,18).")
@click.option("--thickness", default=None, help="Line width in px at 112 px, 'low,high' (default 0.6,1.5).")
@click.option("--alpha", default=None, help="Opacity, 'low,high' (default 0.45,0.9).")
@click.option("--jpeg-quality", default=None, help="Re-compression quality 'low,high' (default 55,90) or 'none'.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@_common_options
def mesh_cmd(faces_dir: Path, output: Path, seed: int, families: str | None, period: str | None,
             thickness: str | None, alpha: str | None, jpeg_quality: str | None, overwrite: bool,
             skip_bad: bool, progress: bool | None) -> None:
    """Overlay synthetic ID-photo meshes on every image under FACES_DIR.

    Writes OUTPUT/<relative path>.png (meshed) and <...>_mask.png (255 where
    the mesh covers the face) and mesh.csv with the values drawn for each
    image.  Deterministic: each image's overlay is seeded by --seed and its
    relative path.  The generator's parameters are described in docs/data.md.
    """
    from harness.atomic import atomic_dir
    from harness.formats.images import encode_image, is_image_file, read_image
    from harness.formats.mesh import MeshParams, mesh_image, sample_mesh

    overrides: dict[str, Any] = {}
    if families:
        overrides["families"] = _range(families, int)
    if period:
        overrides["period"] = _range(period)
    if thickness:
        overrides["thickness"] = _range(thickness)
    if alpha:
        overrides["alpha"] = _range(alpha)
    if jpeg_quality:
        overrides["jpeg_quality"] = None if jpeg_quality.lower() == "none" else _range(jpeg_quality, int)
    params = MeshParams(**{**asdict(MeshParams()), **overrides})
    files = sorted(p for p in faces_dir.rglob("*") if p.is_file() and is_image_file(p)
                   and not p.stem.endswith("_mask"))
    if not files:
        raise DataError(f"{faces_dir}: no images found")
    skips = Skips(skip_bad)
    written = 0
    try:
        with atomic_dir(output, overwrite=overwrite) as tmp:
            rows = []
            for f in _progress(files, len(files), "mesh", progress):
                rel = f.relative_to(faces_dir)
                try:
                    image = read_image(f)
                except DataError as exc:
                    skips.handle(exc)
                    continue
                key = [seed, zlib.crc32(rel.as_posix().encode())]
                meshed, mask = mesh_image(image, np.random.default_rng(key), params)
                s = sample_mesh(image.shape, np.random.default_rng(key), params)
                out = tmp / rel.with_suffix(".png")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(encode_image(meshed, ".png"))
                out.with_name(out.stem + "_mask.png").write_bytes(encode_image(mask * 255, ".png"))
                rows.append({"file": rel.with_suffix(".png").as_posix(), "source": rel.as_posix(),
                             "families": len(s.thetas), "period": ";".join(f"{v:.2f}" for v in s.periods),
                             "thickness": f"{s.thickness:.2f}", "alpha": f"{s.alpha:.3f}",
                             "color": "#%02x%02x%02x" % s.color, "jpeg_quality": s.jpeg_quality or "",
                             "mask_fraction": f"{float(mask.mean()):.4f}"})
                written += 1
            with open(tmp / "mesh.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file"])
                w.writeheader()
                w.writerows(rows)
            (tmp / "mesh_params.json").write_text(json.dumps({"seed": seed, **asdict(params)}, indent=2))
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
    skips.report()
    click.echo(f"wrote {output}: {written} meshed images with masks (seed {seed})")


# ----------------------------------------------------------------- inspect
def _detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "pairs.txt").is_file() or (path / "lfw_home").is_dir():
            return "lfw"
        if any(path.glob("*.rec")):
            return "rec"
        if any(path.glob("*.tfrecord")) or any(path.glob("*.tfrecords")):
            return "tfrecord"
        if (path / "wider_face_val.mat").is_file():
            return "wider"
        if (path / "FDDB-folds").is_dir() or any(path.glob("FDDB-fold-*-ellipseList.txt")):
            return "fddb"
        return "imagefolder"
    suffix = path.suffix.lower()
    if suffix in (".rec", ".idx"):
        return "rec"
    if suffix in (".tfrecord", ".tfrecords"):
        return "tfrecord"
    if suffix == ".bin":
        return "bin"
    if suffix in _VIDEO_EXT:
        return "video"
    if suffix == ".txt":
        return "pairs"
    from harness.formats.images import is_image_file

    if is_image_file(path):
        return "image"
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] == b"\x0a\x23\xd7\xce":
        return "rec"
    if head[:1] == b"\x80":
        return "bin"
    raise DataError(f"{path}: unknown format; expected an identity folder, LFW folder, .rec, .tfrecord, "
                    ".bin, pairs .txt or a video")


def _check_blobs(items: Iterable[tuple[str, int, bytes]], total: int, skips_list: list[str], sizes: Counter,
                 labels: Counter, progress: bool | None, decode: bool = True) -> int:
    from harness.formats.images import decode_image, image_size

    n = 0
    for where, label, blob in _progress(items, total, "inspect", progress):
        n += 1
        labels[label] += 1
        try:
            if decode:
                img = decode_image(blob, where=where)
                sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
            else:
                wh = image_size(blob)
                sizes[f"{wh[0]}x{wh[1]}" if wh else "unknown"] += 1
        except DataError as exc:
            skips_list.append(str(exc))
    return n


def _inspect(path: Path, progress: bool | None, decode: bool) -> dict[str, Any]:
    fmt = _detect_format(path)
    out: dict[str, Any] = {"path": str(path), "format": fmt}
    sizes: Counter = Counter()
    labels: Counter = Counter()
    corrupt: list[str] = []
    if fmt in ("imagefolder", "lfw"):
        root = path
        if fmt == "lfw":
            root = path / "lfw_home" if (path / "lfw_home").is_dir() else path
            pairs_file = root / "pairs.txt"
            if pairs_file.is_file():
                from harness.formats.pairs import parse_pairs

                pf = parse_pairs(pairs_file, skip_bad=True)
                out["pairs"] = {"file": str(pairs_file), "folds": pf.folds, "per_fold": pf.per_fold,
                                "pairs": len(pf.pairs), "genuine": sum(p.issame for p in pf.pairs),
                                "malformed_lines": len(pf.skipped), "protocol": pf.protocol}
            root = next((root / d for d in ("lfw_funneled", "lfw-deepfunneled", "lfw") if (root / d).is_dir()), root)
        from harness.formats.folders import scan_identities

        ids = scan_identities(root)
        if fmt == "imagefolder" and all(i.name[:1] == "s" and i.name[1:].isdigit() for i in ids) and \
                all(f.suffix.lower() == ".pgm" for i in ids for f in i.files):
            out["format"] = "att"
        files = [(str(f), k, f) for k, i in enumerate(ids) for f in i.files]

        def gen():
            for where, k, f in files:
                try:
                    blob = f.read_bytes()
                except OSError as exc:
                    corrupt.append(f"{f}: unreadable ({exc})")
                    continue
                yield where, k, blob

        out["identities"] = len(ids)
        out["images"] = _check_blobs(gen(), len(files), corrupt, sizes, labels, progress, decode)
        out["images_folder"] = str(root)
    elif fmt == "rec":
        from harness.formats.recordio import RecordIOReader, read_insightface_rec, unpack

        rec_path = path
        if path.is_dir():
            rec_path = next(iter(sorted(path.glob("*.rec"))))
        elif path.suffix == ".idx":
            rec_path = path.with_suffix(".rec")
        r = read_insightface_rec(rec_path, skip_bad=True)
        corrupt.extend(r.skipped)
        out["records"] = len(r.reader)
        out["identity_ranges"] = len(r.ranges)
        out["insightface_header"] = bool(r.ranges) or len(r.keys) < len(r.reader)

        def gen():
            for k, lab in zip(r.keys, r.labels):
                where = f"{rec_path}, record {k}"
                try:
                    yield where, int(lab), unpack(r.reader.read_idx(k), where)[1]
                except DataError as exc:
                    corrupt.append(str(exc))

        out["images"] = _check_blobs(gen(), len(r.keys), corrupt, sizes, labels, progress, decode)
        out["identities"] = len(labels)
    elif fmt == "tfrecord":
        from harness.formats.tfrecord import IMAGE_KEY, LABEL_KEY, TFRecordReader, decode_example

        tf_path = path if path.is_file() else sorted(list(path.glob("*.tfrecord")) + list(path.glob("*.tfrecords")))[0]
        reader = TFRecordReader(tf_path, skip_bad=True)
        corrupt.extend(reader.skipped)

        def gen():
            for i in range(len(reader)):
                where = f"{tf_path}, record {i}"
                try:
                    ex = decode_example(reader.read(i), where)
                    yield where, int((ex.get(LABEL_KEY) or [-1])[0]), (ex.get(IMAGE_KEY) or [b""])[0]
                except DataError as exc:
                    corrupt.append(str(exc))

        out["records"] = len(reader)
        out["images"] = _check_blobs(gen(), len(reader), corrupt, sizes, labels, progress, decode)
        out["identities"] = len(labels)
    elif fmt == "bin":
        from harness.formats.insightface_bin import load_bin

        blobs, issame = load_bin(path)
        out["pairs"] = {"pairs": len(issame), "genuine": int(sum(issame))}
        out["images"] = _check_blobs(((f"{path}, image {i}", -1, b) for i, b in enumerate(blobs)), len(blobs),
                                     corrupt, sizes, labels, progress, decode)
        labels.clear()
    elif fmt == "pairs":
        from harness.formats.pairs import parse_pairs

        pf = parse_pairs(path, skip_bad=True)
        corrupt.extend(pf.skipped)
        out["pairs"] = {"folds": pf.folds, "per_fold": pf.per_fold, "pairs": len(pf.pairs),
                        "genuine": sum(p.issame for p in pf.pairs), "protocol": pf.protocol}
        out["identities"] = len({n for p in pf.pairs for n in (p.name1, p.name2)})
    elif fmt == "video":
        import cv2

        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise DataError(f"{path}: OpenCV cannot open this video")
        out["video"] = {"frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), "fps": cap.get(cv2.CAP_PROP_FPS),
                        "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                        "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}
        cap.release()
    elif fmt == "image":
        out["images"] = _check_blobs([(str(path), -1, path.read_bytes())], 1, corrupt, sizes, labels,
                                     progress, True)
        labels.clear()
    elif fmt == "wider":
        from harness.formats.detection import parse_labelv2

        lab = path / "labelv2_val.txt"
        if lab.is_file():
            entries = parse_labelv2(lab)
            out["annotations"] = {"images": len(entries), "faces": int(sum(len(e.boxes) for e in entries))}
        out["image_folders"] = [d.name for d in sorted(path.iterdir()) if d.is_dir()]
    elif fmt == "fddb":
        from harness.formats.detection import parse_fddb_ellipses

        folder = path / "FDDB-folds" if (path / "FDDB-folds").is_dir() else path
        entries = [e for f in sorted(folder.glob("FDDB-fold-*-ellipseList.txt")) for e in parse_fddb_ellipses(f)]
        out["annotations"] = {"images": len(entries), "faces": int(sum(len(e.boxes) for e in entries))}
    if labels and fmt not in ("imagefolder", "lfw"):
        out["identities"] = len(labels)
    if labels:
        counts = np.asarray(list(labels.values()))
        out["images_per_identity"] = {"min": int(counts.min()), "median": float(np.median(counts)),
                                      "max": int(counts.max())}
    if sizes:
        out["image_sizes"] = dict(sizes.most_common(10))
        if len(sizes) > 10:
            out["image_sizes"]["(other)"] = sum(sizes.values()) - sum(v for _, v in sizes.most_common(10))
    out["corrupt"] = len(corrupt)
    out["corrupt_items"] = corrupt[:50]
    return out


@command.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--no-decode", is_flag=True, help="Read image sizes from headers only (faster; "
              "does not find corrupt pixel data).")
@click.option("--progress/--no-progress", default=None)
def inspect_cmd(path: Path, as_json: bool, no_decode: bool, progress: bool | None) -> None:
    """Say what PATH is: format, identities, images, image sizes, corrupt files."""
    info = _inspect(path, progress, decode=not no_decode)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['path']}: {info['format']}")
    for key in ("identities", "images", "records", "identity_ranges", "images_folder"):
        if key in info:
            click.echo(f"  {key.replace('_', ' ')}: {info[key]}")
    for key in ("pairs", "video", "annotations", "images_per_identity"):
        if key in info:
            click.echo(f"  {key.replace('_', ' ')}: " + ", ".join(f"{k}={v}" for k, v in info[key].items()))
    if "image_sizes" in info:
        click.echo("  image sizes (WxH): " + ", ".join(f"{k} x{v}" for k, v in info["image_sizes"].items()))
    click.echo(f"  corrupt: {info['corrupt']}")
    for item in info["corrupt_items"][:10]:
        click.echo(f"    {item}")
