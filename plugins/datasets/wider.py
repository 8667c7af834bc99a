"""``wider``: WIDER FACE validation ground truth over the images present.

Reads ``wider_face_val.mat`` (boxes x, y, w, h per event / file, via
``scipy.io.loadmat``) and the official keep-list of the chosen difficulty
(``wider_<difficulty>_val.mat``, ``gt_list``: 1-based indices of the faces
that count); faces outside it are flagged ``ignore`` (WIDER's evaluation
neither rewards nor penalises detections matched to them).

With the stretched subset (``images_416/<basename>.jpg``) the boxes are scaled
by ``(416 / W, 416 / H)`` with ``W, H`` from ``labelv2_val.txt``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.formats.detection import parse_labelv2
from harness.types import Dataset, DetectionSample, DetectionSet

from facebench_plugins.datasets._common import FileLoader, require_path

__all__ = ["Wider", "build"]


def _cell_str(x: Any) -> str:
    a = np.asarray(x)
    while a.dtype == object:
        a = np.asarray(a.reshape(-1)[0])
    return str(a.reshape(-1)[0]) if a.size else ""


class Wider(Dataset):
    name = "wider"
    detection_protocol = "wider"  # harness.types.ScoredDetectionData: AP per `difficulty` keep-list

    def __init__(self, root: Path, difficulty: str = "hard", images: str = "", stretched: int = 0) -> None:
        self.root = Path(root)
        if difficulty not in ("easy", "medium", "hard"):
            raise DataError(f"wider difficulty {difficulty!r}: expected easy, medium or hard")
        self.difficulty = difficulty
        if images:
            self.images = Path(images)
        else:
            self.images = next((self.root / d for d in ("images_416", "images", "WIDER_val/images")
                                if (self.root / d).is_dir()), self.root / "images")
        m = re.fullmatch(r"images_(\d+)", self.images.name)
        self.stretched = stretched or (int(m.group(1)) if m else 0)

    def _mat(self, name: str) -> dict:
        import scipy.io

        p = self.root / name
        if not p.is_file():
            raise DataError(f"{p}: WIDER ground truth missing; expected {name} in {self.root}")
        try:
            return scipy.io.loadmat(str(p))
        except Exception as exc:  # scipy raises several types for a bad file
            raise DataError(f"{p}: not a readable .mat file ({type(exc).__name__}: {exc})") from None

    def detection(self) -> DetectionSet:
        if not self.images.is_dir():
            raise DataError(f"{self.images}: WIDER images folder not found (pass -o wider.images=...)")
        gt = self._mat("wider_face_val.mat")
        keep = self._mat(f"wider_{self.difficulty}_val.mat")
        sizes: dict[str, tuple[int, int]] = {}
        lab = self.root / "labelv2_val.txt"
        if lab.is_file():
            sizes = {Path(e.path).stem: (e.width, e.height) for e in parse_labelv2(lab)}
        present = {p.stem: p for p in self.images.rglob("*.jpg")}
        samples: list[DetectionSample] = []
        events = gt["event_list"]
        for e in range(len(events)):
            event = _cell_str(events[e][0])
            files = gt["file_list"][e][0]
            boxes_e = gt["face_bbx_list"][e][0]
            keep_e = keep["gt_list"][e][0]
            for f in range(len(files)):
                stem = _cell_str(files[f][0])
                if stem not in present:
                    continue
                xywh = np.asarray(boxes_e[f][0], np.float64).reshape(-1, 4)
                boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
                kept = np.asarray(keep_e[f][0]).reshape(-1).astype(np.int64) - 1
                ignore = np.ones(len(boxes), bool)
                ignore[kept[(kept >= 0) & (kept < len(boxes))]] = False
                info = {"event": event, "file": f"{event}/{stem}.jpg"}
                if self.stretched:
                    if stem not in sizes:
                        raise DataError(f"{lab}: no size for {stem}; the stretched subset needs the "
                                        "original W, H from labelv2_val.txt")
                    w, h = sizes[stem]
                    boxes = boxes * np.array([self.stretched / w, self.stretched / h] * 2)
                    info.update(original_size=(w, h), stretched=self.stretched)
                samples.append(DetectionSample(key=str(present[stem]), boxes=boxes.astype(np.float32),
                                               ignore=ignore, info=info))
        if not samples:
            raise DataError(f"{self.images}: none of its images is in wider_face_val.mat; expected "
                            "WIDER val images named <event-id>_<name>.jpg")
        samples.sort(key=lambda s: s.key)
        extra = f", stretched to {self.stretched}x{self.stretched}" if self.stretched else ""
        return DetectionSet(samples=samples, loader=FileLoader(),
                            protocol=f"WIDER FACE val {self.difficulty} ({len(samples)} images{extra})")

    def __repr__(self) -> str:
        return f"Wider({str(self.root)!r}, {self.difficulty})"


def build(opts: Any, path: Any = None) -> Wider:
    root = require_path(path, "wider", default_relative="wider")
    return Wider(root, opts.difficulty, opts.images, opts.stretched)
