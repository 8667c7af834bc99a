"""``spoof``: a presentation-attack (liveness) folder.

Layout (images and, optionally, videos at any depth below each folder)::

    root/live/...                      bona fide (label 1)
    root/attack/<species>/...          attacks of one species (label 0)
    root/{train,dev,test}/live/...     optional splits, each with the same two folders
    root/{train,dev,test}/attack/<species>/...

Top-level ``live/`` and ``attack/`` items have split ``""`` (unsplit).  A
video file (``.mp4 .avi .mov .mkv .webm``) is listed in
:attr:`LivenessSet.videos` and contributes every ``video_every``-th frame (at
most ``video_frames`` per video) as items keyed ``"<path>#<frame>"``, read
with ``cv2.VideoCapture``.  ``synthesis.json`` at the root (written by
:func:`harness.synth.synthesize_spoof_set`) marks the attacks as synthetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.errors import DataError
from harness.formats.images import is_image_file, read_image
from harness.types import Dataset, ImageSet
from facebench_plugins.datasets._options import SpoofOptions  # noqa: F401  (re-exported)

__all__ = ["LivenessSet", "Spoof", "SpoofOptions", "VIDEO_EXTENSIONS", "build"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SPLITS = ("train", "dev", "test")
_SYNTHESIS_FILE = "synthesis.json"  # harness.synth.SYNTHESIS_FILE (not imported: keeps this module light)


@dataclass
class LivenessSet:
    """Bona fide and attack presentations with their splits.

    :param images: the items (``keys`` / ``loader``); ``images.labels`` holds
        the same 1 = bona fide / 0 = attack labels.
    :param labels: (N,) int64, 1 = bona fide, 0 = attack.
    :param species: (N,) str, ``""`` for bona fide, the attack species otherwise.
    :param split: (N,) str, ``train`` / ``dev`` / ``test`` or ``""`` (unsplit).
    :param subjects: (N,) str, the first folder below ``live/`` or
        ``attack/<species>/`` (the identity in a synthesized set), ``""`` when none.
    :param videos: one dict per video file (path, label, species, split, frames used).
    :param synthetic_attacks: the attacks were synthesized (not a real PAD database).
    :param threshold_rule: the dev-split threshold rule chosen for this data.
    """

    images: ImageSet
    labels: np.ndarray
    species: np.ndarray
    split: np.ndarray
    subjects: np.ndarray
    videos: list[dict[str, Any]] = field(default_factory=list)
    synthetic_attacks: bool = False
    threshold_rule: str = "eer"
    note: str = ""
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def splits(self) -> list[str]:
        return sorted(set(self.split.tolist()))

    def indices(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)


class SpoofLoader:
    """``loader(key) -> RGB uint8``: an image path, or ``"<video>#<frame>"`` (picklable)."""

    def __call__(self, key: str) -> np.ndarray:
        path, sep, idx = str(key).rpartition("#")
        if sep and idx.isdigit() and path.lower().endswith(VIDEO_EXTENSIONS):
            return read_frame(path, int(idx))
        return read_image(key)


def read_frame(path: str, index: int) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: OpenCV cannot open this video (missing, corrupt or an unsupported codec)")
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise DataError(f"{path}, frame {index}: cannot be read (corrupt or past the end)")
    return np.ascontiguousarray(frame[:, :, ::-1])


def _frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DataError(f"{path}: OpenCV cannot open this video (missing, corrupt or an unsupported codec)")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:  # some containers do not store it: count by reading
            n = 0
            while cap.grab():
                n += 1
    finally:
        cap.release()
    return n


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


class Spoof(Dataset):
    name = "spoof"

    def __init__(self, root: Path, options: SpoofOptions | None = None) -> None:
        self.root = Path(root)
        self.options = options or SpoofOptions()

    def _scan_split(self, base: Path, split: str, rows: list, videos: list) -> None:
        live = base / "live"
        attack = base / "attack"
        groups: list[tuple[Path, int, str]] = []
        if live.is_dir():
            groups.append((live, 1, ""))
        if attack.is_dir():
            loose = [p for p in attack.iterdir() if p.is_file() and (is_image_file(p) or p.suffix.lower() in VIDEO_EXTENSIONS)]
            if loose:
                raise DataError(
                    f"{attack}: files directly under attack/ (e.g. {loose[0].name}); put each attack in "
                    "attack/<species>/ (e.g. attack/print/, attack/replay/)"
                )
            for sp in sorted(p for p in attack.iterdir() if p.is_dir()):
                groups.append((sp, 0, sp.name))
        for folder, label, species in groups:
            for f in _files(folder):
                rel = f.relative_to(folder)
                subject = rel.parts[0] if len(rel.parts) > 1 else ""
                if is_image_file(f):
                    rows.append((str(f), label, species, split, subject))
                elif f.suffix.lower() in VIDEO_EXTENSIONS:
                    n = _frame_count(f)
                    frames = list(range(0, n, self.options.video_every))
                    if self.options.video_frames:
                        frames = frames[: self.options.video_frames]
                    videos.append({"path": str(f), "label": label, "species": species, "split": split,
                                   "frames": n, "frames_used": frames})
                    rows.extend((f"{f}#{i}", label, species, split, subject) for i in frames)

    def liveness(self) -> LivenessSet:
        """Every presentation with its label (1 = bona fide), species and split."""
        if not self.root.is_dir():
            raise DataError(f"dataset 'spoof': {self.root} is not a folder")
        rows: list[tuple[str, int, str, str, str]] = []
        videos: list[dict[str, Any]] = []
        self._scan_split(self.root, "", rows, videos)
        for split in SPLITS:
            if (self.root / split).is_dir():
                self._scan_split(self.root / split, split, rows, videos)
        if not rows:
            raise DataError(
                f"dataset 'spoof': no images under {self.root}; expected live/ and attack/<species>/ "
                "(optionally inside train/, dev/ and test/)"
            )
        keys, labels, species, split, subjects = (list(c) for c in zip(*rows))
        y = np.asarray(labels, np.int64)
        synthetic, note = False, ""
        meta = self.root / _SYNTHESIS_FILE
        if meta.is_file():
            try:
                info = json.loads(meta.read_text())
            except ValueError as exc:
                raise DataError(f"{meta}: not valid JSON ({exc})") from None
            synthetic = bool(info.get("synthetic_attacks", True))
            note = str(info.get("note", ""))
        images = ImageSet(keys=keys, labels=y, loader=SpoofLoader(), identities=("attack", "bona_fide"),
                          aligned=self.options.aligned or None, synthetic=False,
                          info={"source": str(self.root), "format": "spoof", "synthetic_attacks": synthetic})
        return LivenessSet(
            images=images, labels=y, species=np.asarray(species, dtype=str), split=np.asarray(split, dtype=str),
            subjects=np.asarray(subjects, dtype=str), videos=videos, synthetic_attacks=synthetic,
            threshold_rule=self.options.threshold_rule, note=note, source=str(self.root),
        )

    def __repr__(self) -> str:
        return f"Spoof({str(self.root)!r})"


def build(opts: SpoofOptions | None = None, path: Any = None) -> Spoof:
    if not path:
        from harness.errors import ConfigError

        raise ConfigError("dataset 'spoof' needs a path (e.g. --eval spoof=/path/to/spoof_folder)")
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise DataError(f"dataset 'spoof': {p} does not exist")
    return Spoof(p, opts)
