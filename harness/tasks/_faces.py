"""Detection → face choice → alignment, stated once for every task.

Given an :class:`~harness.types.ImageSet`, :func:`locate_faces` runs a
detector on each raw photo, keeps one face per image (nearest the centre by
default: LFW centres its subject) and caches boxes and landmarks per
(images, detector, options) so a detector × recognizer grid detects once.
:func:`make_crops` turns those into aligned crops for a template, with a
flagged centre-crop fallback when no face was found.  The per-image steps are
:func:`detect_one` and :func:`crop_one`; :func:`face_crops` runs them (and
optionally the embedding) as a pipeline, in this process or in a pool of
worker processes (:mod:`harness.tasks._pipeline`), with the same store
(:func:`face_store`) and the same crops either way.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harness.align import choose_face, face_crop, fallback_crop, resize_to
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.registry import Registry
    from harness.tasks._landmark_points import LandmarkerUse
    from harness.types import ImageSet

__all__ = ["FaceCrops", "FaceLocations", "centre_box", "crop_one", "detect_one", "face_crops", "face_store",
           "fingerprint", "locate_faces", "make_crops", "progress_iter", "refine_one", "resize_crop"]


def progress_iter(items: Sequence[Any] | range, desc: str, enabled: bool = True, unit: str = "img"):
    """A tqdm bar (rate and ETA) over ``items``, or the items themselves."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, dynamic_ncols=True, leave=False)


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class FaceLocations:
    """One chosen face per image.

    :param boxes: (N, 4) float32; NaN rows where no face was found.
    :param landmarks: (N, 5, 2) float32; NaN where not found or not predicted.
    :param found: (N,) bool.
    :param faces_per_image: (N,) int, how many faces the detector returned.
    :param landmarker: with ``--landmarker``: who placed the points, and where it placed none
        (:class:`harness.tasks._landmark_points.LandmarkerUse`); None: the detector's points.
    """

    boxes: np.ndarray
    landmarks: np.ndarray
    found: np.ndarray
    faces_per_image: np.ndarray
    landmarker: "LandmarkerUse | None" = None

    @property
    def fallbacks(self) -> int:
        return int((~self.found).sum())


def locate_faces(
    images: "ImageSet",
    indices: np.ndarray,
    *,
    registry: "Registry",
    detector: str,
    detector_options: dict[str, Any] | None = None,
    policy: str = "center",
    cache_dir: Path | None = None,
    progress: bool = True,
    landmarker: str | None = None,
    landmarker_options: dict[str, Any] | None = None,
) -> FaceLocations:
    """Detect and choose one face in each of ``images[indices]`` (cached).

    The cache is one store per (detector, options, face policy) holding a
    row per image key, so any subset of images — the evaluated folds, a
    training split, another run's images — reuses what was detected before
    and only detects what is missing.  Keys that are absolute file paths are
    shared by every dataset; other keys (record numbers, ``file#index``) are
    scoped to their dataset's source.

    ``landmarker`` (``--landmarker NAME``): the landmarker places the five points in each
    chosen box (:func:`refine_one`), in a store of its own; ``landmarker`` of the result
    counts the faces where it placed none.
    """
    from harness.tasks._pipeline import _landmarker_plan  # the pipeline's check: its scheme gives the five

    detector_options = dict(detector_options or {})
    lmk = _landmarker_plan(registry, landmarker, landmarker_options, None)
    keys = [str(images.keys[i]) for i in indices]
    store = face_store(images, keys, detector, detector_options, policy, cache_dir, lmk.name, dict(lmk.options))
    cached = _read_store(store)
    rows: list[tuple | None] = [cached.get(k) for k in keys]
    missing = [j for j, row in enumerate(rows) if row is None]
    if missing:
        det = registry.build("detector", detector, detector_options)
        points = registry.build("landmarker", lmk.name, dict(lmk.options)) if lmk.name else None
        for j in progress_iter(missing, f"detect ({detector})", progress):
            img = images.load(int(indices[j]))
            row = detect_one(det, img, policy)  # with the detector's score of the face (EVRC quality signal)
            rows[j] = cached[keys[j]] = refine_one(points, img, row, lmk.scheme) if points is not None else row
        if store is not None:
            _write_store(store, cached)
    boxes = np.array([r[0] for r in rows], np.float32).reshape(-1, 4)
    lms = np.array([r[1] for r in rows], np.float32).reshape(-1, 5, 2)
    found = np.array([bool(r[2]) for r in rows], bool)
    counts = np.array([int(r[3]) for r in rows], np.int64)
    return FaceLocations(boxes, lms, found, counts, lmk.use(detector, rows))


def face_store(images: "ImageSet", keys: Sequence[str], detector: str, detector_options: dict[str, Any],
               policy: str, cache_dir: Path | None, landmarker: str | None = None,
               landmarker_options: dict[str, Any] | None = None) -> Path | None:
    """The detection store of (detector, options, face policy[, landmarker, its options]) the rows
    of ``keys`` live in.

    Keys that are absolute file paths share one store across datasets; other
    keys are scoped to their dataset's source.  The serial path and the
    worker pool (:mod:`harness.tasks._pipeline`) read and write the same file.
    With a ``landmarker`` (``--landmarker``) the rows hold its five alignment points
    instead of the detector's, in a store of their own.
    """
    import os

    if not cache_dir:
        return None
    shared = all(os.path.isabs(k) and "#" not in k for k in keys)
    scope = None if shared else [images.info.get("format"), images.info.get("source"), len(images)]
    if landmarker:  # another key, another store: the detector-points store is untouched
        lm_key = fingerprint("faces-store", detector, detector_options, policy, scope, "landmarker", landmarker,
                             dict(landmarker_options or {}), "miss-flag")  # rows carry the miss flag
        return Path(cache_dir) / f"faces-{detector}-lm-{landmarker}-{lm_key}.npz"
    return Path(cache_dir) / f"faces-{detector}-{fingerprint('faces-store', detector, detector_options, policy, scope)}.npz"


def detect_one(det: Any, img: np.ndarray, policy: str = "center") -> tuple[np.ndarray, np.ndarray, bool, int, float]:
    """One image's store row: the chosen face's box (4,), landmarks (5, 2) (NaN where not
    found or not predicted), whether a face was found, how many the detector returned and
    the detector's score of the chosen face (NaN when none was found)."""
    box = np.full(4, np.nan, np.float32)
    lm = np.full((5, 2), np.nan, np.float32)
    d = det.detect(img)
    k = choose_face(d, img.shape, policy=policy)
    if k is None:
        return box, lm, False, len(d), float("nan")
    box[:] = d.boxes[k]
    if d.landmarks is not None:
        lm[:] = d.landmarks[k]
    return box, lm, True, len(d), float(d.scores[k])


def refine_one(landmarker: Any, img: np.ndarray, row: tuple, scheme: str) -> tuple:
    """``row`` (a :func:`detect_one` store row) with the landmarker's five alignment points in place of
    the detector's: the landmarker runs in the chosen face's box and its points
    (``scheme``) become the five (:func:`harness.tasks._landmark_points.alignment_points`).

    The row comes back with six fields, the sixth (``LANDMARKER_MISS``) saying whether the
    landmarker *missed*: a found face in whose box it placed no finite points keeps the
    detector's points (the protocol counts these: ``landmarker_misses``).  A row without a
    face is not a miss.  A shorter row (no detector score) gets a NaN score."""
    from harness.tasks._landmark_points import alignment_points

    base = (*row[:5], *(float("nan"),) * (5 - len(row[:5])))
    if not base[2]:
        return (*base, False)
    pts = np.asarray(landmarker.predict(img, np.asarray(base[0], np.float64)[None]), np.float64)
    five = alignment_points(pts.reshape(-1, 2), scheme) if pts.size else np.full((5, 2), np.nan)
    if not np.isfinite(five).all():
        return (*base, True)
    return (base[0], five.astype(np.float32), *base[2:], False)


#: index of a landmarker store row's flag "the landmarker placed no points; the detector's were kept"
LANDMARKER_MISS = 5


def crop_one(img: np.ndarray, box: np.ndarray, landmarks: np.ndarray, found: bool, *, template: str,
             size: tuple[int, int], aligner: Any = None) -> tuple[np.ndarray, bool]:
    """One image's crop and whether it is the flagged fallback.

    ``aligner`` is a recognizer that aligns itself (its ``align_faces`` cuts the
    crop from the box, the centre box when no face was found); otherwise the
    five landmarks (or the box) align to ``template`` and a centre crop stands
    in when no face was found.
    """
    if aligner is not None:
        use = box if found else centre_box(img.shape)
        return aligner.align_faces(img, np.asarray(use)[None])[0], not found
    crop = face_crop(img, size, template, landmarks=landmarks, box=box) if found else None
    if crop is None:
        return resize_crop(fallback_crop(img, template), size), True
    return resize_crop(crop, size), False


#: What reading a damaged ``.npz`` cache raises; such a cache is recomputed, never trusted.
DAMAGED_CACHE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def _read_store(path: Path | None) -> dict[str, tuple]:
    if path is None or not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as z:
            # det_scores: absent from stores written before scores were kept (NaN: unknown)
            scores = z["det_scores"] if "det_scores" in z.files else np.full(len(z["keys"]), np.nan, np.float32)
            rows = {str(k): (b, lm, bool(f), int(c), float(s)) for k, b, lm, f, c, s in
                    zip(z["keys"], z["boxes"], z["landmarks"], z["found"], z["faces_per_image"], scores)}
            if "landmarker_miss" in z.files:  # a landmarker's store: each row's miss flag (refine_one)
                rows = {k: (*r, bool(m)) for (k, r), m in zip(rows.items(), z["landmarker_miss"])}
            return rows
    except DAMAGED_CACHE:  # a damaged cache is recomputed, never trusted
        return {}


def _write_store(path: Path, rows: dict[str, tuple]) -> None:
    import io

    from harness.atomic import atomic_output

    ks = sorted(rows)
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(ks, dtype=str),
             boxes=np.array([rows[k][0] for k in ks], np.float32).reshape(-1, 4),
             landmarks=np.array([rows[k][1] for k in ks], np.float32).reshape(-1, 5, 2),
             found=np.array([rows[k][2] for k in ks], bool),
             faces_per_image=np.array([rows[k][3] for k in ks], np.int64),
             det_scores=np.array([rows[k][4] if len(rows[k]) > 4 else np.nan for k in ks], np.float32),
             **_miss_column(rows, ks))
    with atomic_output(path, "wb") as fh:
        fh.write(buf.getvalue())


def _miss_column(rows: dict[str, tuple], keys: list[str]) -> dict[str, np.ndarray]:
    """The ``landmarker_miss`` column of a landmarker's store (every row refined), else nothing."""
    if not keys or not all(len(rows[k]) > LANDMARKER_MISS for k in keys):
        return {}
    return {"landmarker_miss": np.array([bool(rows[k][LANDMARKER_MISS]) for k in keys], bool)}


resize_crop = resize_to  # resize to (H, W) when needed (already-aligned data of another size)


def make_crops(
    images: "ImageSet",
    indices: np.ndarray,
    *,
    template: str,
    size: tuple[int, int],
    faces: FaceLocations | None,
    progress: bool = True,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Aligned crops of ``images[indices]`` at ``size`` and a (N,) fallback flag.

    * ``faces is None``: the images are already aligned crops; they are only
      resized.
    * landmarks known: five-point similarity alignment to ``template``.
    * box only (e.g. Haar): a square crop around the box.
    * no face: a centre crop, flagged.
    """
    crops: list[np.ndarray] = []
    fallback = np.zeros(len(indices), bool)
    for j in progress_iter(range(len(indices)), "align", progress):
        img = images.load(int(indices[j]))
        if faces is None:
            crops.append(resize_crop(img, size))
            continue
        crop, fallback[j] = crop_one(img, faces.boxes[j], faces.landmarks[j], bool(faces.found[j]),
                                     template=template, size=size)
        crops.append(crop)
    return crops, fallback


def embed_in_batches(
    fn: Callable[[list[np.ndarray]], np.ndarray], crops: Sequence[np.ndarray], batch: int = 64,
    desc: str = "embed", progress: bool = True,
) -> np.ndarray:
    out = []
    for s in progress_iter(range(0, len(crops), batch), desc, progress, unit="batch"):
        out.append(np.asarray(fn(list(crops[s:s + batch])), dtype=np.float32))
    if not out:
        raise HarnessError("no images to embed")
    return np.concatenate(out)


@dataclass
class FaceCrops:
    """The crops a model sees, and how they were made (stated in the protocol).

    :param crops: one RGB uint8 crop per image.
    :param fallback: (N,) bool, no face found (a flagged centre crop).
    :param detector: the detector used, ``None`` for already-aligned data.
    :param alignment: the template, or the recognizer's own alignment.
    :param faces_per_image: (N,) faces the detector returned, or ``None``.
    :param embeddings: (N, D) float32 when the pipeline embedded the crops too, else ``None``.
    :param stages: how the pipeline ran: workers, where it embedded, seconds per stage,
        wall time, images per second (:mod:`harness.tasks._pipeline`).
    :param landmarker: with ``--landmarker``: who placed the alignment points, and on how many
        faces it placed none (:class:`harness.tasks._landmark_points.LandmarkerUse`); None when
        the detector placed them (or the data was already aligned).
    """

    crops: list
    fallback: np.ndarray
    detector: str | None
    alignment: str
    faces_per_image: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    stages: dict | None = None
    landmarker: "LandmarkerUse | None" = None


def centre_box(shape: tuple[int, ...]) -> np.ndarray:
    """The flagged fallback box: centred, half the shorter side."""
    h, w = shape[:2]
    s = min(h, w) / 4
    return np.array([w / 2 - s, h / 2 - s, w / 2 + s, h / 2 + s], np.float32)


def face_crops(images: "ImageSet", indices: np.ndarray, *, registry: "Registry", detector: str | None,
               detector_options: dict[str, Any] | None = None, template: str, size: tuple[int, int],
               recognizer: Any = None, cache_dir: Path | None = None, progress: bool = True,
               desc: str = "align", workers: int | None = 0, embed: bool = False,
               recognizer_recipe: Any = None, device: str = "auto", batch: int = 64,
               collective: Any = None, landmarker: str | None = None,
               landmarker_options: dict[str, Any] | None = None) -> FaceCrops:
    """Crops of ``images[indices]`` for a model: detected (unless already aligned), one face
    chosen per image, aligned to ``template`` — or, for a recognizer that aligns itself
    (:class:`~harness.types.SelfAligningRecognizer`), cut by its ``align_faces``.

    ``workers`` processes decode, detect and align (0: this process; None: the usable
    cores for large sets); with ``embed`` the crops are embedded by ``recognizer`` too, in
    batches of ``batch`` on this process or in the workers (rebuilt there from
    ``recognizer_recipe``, a :class:`harness.tasks._pipeline.Recipe`).  With a
    ``collective`` of several torchrun ranks each rank works on its share and the parts
    are gathered.  Either way the crops, flags and embeddings are those of the serial
    path (:func:`harness.tasks._pipeline.run_faces`).

    ``landmarker`` (``--landmarker NAME``, with ``landmarker_options``): the detector finds the
    box, the landmarker places the five points alignment uses (:func:`refine_one`); its
    name and options are part of the store's key, and ``alignment`` states it.
    """
    from harness.tasks._pipeline import run_faces

    return run_faces(images, indices, registry=registry, detector=detector, detector_options=detector_options,
                     template=template, size=size, recognizer=recognizer, recognizer_recipe=recognizer_recipe,
                     embed=embed, batch=batch, device=device, cache_dir=cache_dir, workers=workers,
                     progress=progress, desc=desc, collective=collective, landmarker=landmarker,
                     landmarker_options=landmarker_options)
