"""``coco_landmarks``: COCO-style keypoint JSON as mmpose writes face-landmark sets
(300-W, 300-VW, 300W-LP, COFW, WFLW, AFLW, LaPa).

``images`` (``id``, ``file_name`` relative to the JSON's folder) and
``annotations`` (``image_id``, ``keypoints`` as x, y, v triples).  The scheme
follows from the point count (68, 98, 29, 19, 106).  The face box is, as
mmpose's face datasets take it, the square of side 200 × ``scale`` around
``center`` where the annotation has them (300-W, 300-VW, WFLW, AFLW; one of
mmpose's WFLW samples has a ``bbox`` half the face's height), else its
``bbox`` (x, y, w, h), else the points' tight box.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.types import LandmarkSample

from facebench_plugins.datasets._common import FileLoader, require_path
from facebench_plugins.datasets._landmark_options import CocoLandmarksOptions
from facebench_plugins.datasets._landmarks import LandmarkDataset, limit, scheme_for, tight_box, xywh_box

__all__ = ["build", "read_coco_landmarks"]


def _box(ann: dict, points: np.ndarray) -> tuple[np.ndarray, str]:
    if ann.get("center") is not None and ann.get("scale") is not None:
        c, half = np.asarray(ann["center"], np.float64), 100.0 * float(ann["scale"])
        return np.r_[c - half, c + half], "center/scale"
    if ann.get("bbox") is not None and len(ann["bbox"]) == 4:
        return xywh_box(ann["bbox"]), "bbox"
    return tight_box(points), "tight"


def read_coco_landmarks(path: Path) -> tuple[list[LandmarkSample], str, set[str]]:
    """The faces of one JSON file, their scheme and which box rules were used."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        files = {im["id"]: im["file_name"] for im in data["images"]}
        anns = list(data["annotations"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a COCO-style keypoint JSON ({type(exc).__name__}: {exc}); expected "
                        "'images' with id / file_name and 'annotations' with image_id / keypoints") from None
    samples, schemes, rules = [], set(), set()
    for k, ann in enumerate(anns):
        kp = np.asarray(ann.get("keypoints", []), np.float64)
        if kp.size == 0 or kp.size % 3 or not np.isfinite(kp).all() or ann.get("image_id") not in files:
            raise DataError(f"{path}: annotation {k} has no finite x, y, v keypoint triples or an unknown image_id")
        points = kp.reshape(-1, 3)[:, :2]
        schemes.add(scheme_for(len(points), f"{path}, annotation {k}"))
        box, rule = _box(ann, points)
        rules.add(rule)
        samples.append(LandmarkSample(str(Path(path).parent / files[ann["image_id"]]), points, box,
                                      {"annotation_id": ann.get("id")}))
    if len(schemes) != 1:
        raise DataError(f"{path}: {'no annotations' if not schemes else f'mixed point counts {sorted(schemes)}'}")
    return sorted(samples, key=lambda s: s.key), schemes.pop(), rules


def build(options: CocoLandmarksOptions | None = None, path: str | None = None) -> LandmarkDataset:
    o = options or CocoLandmarksOptions()
    root = require_path(path, "coco_landmarks")
    if root.is_file():
        ann = root
    elif o.annotations:
        ann = root / o.annotations
    else:
        found = sorted(root.glob("*.json"))
        if len(found) != 1:
            raise DataError(f"{root}: {len(found)} JSON files; give one with -o coco_landmarks.annotations=NAME")
        ann = found[0]
    samples, scheme, rules = read_coco_landmarks(ann)
    samples = limit(samples, o.limit)
    rule = {"bbox": "the annotation's bbox", "center/scale": "mmpose center / scale (side 200 x scale)",
            "tight": "tight box of the points"}
    return LandmarkDataset("coco_landmarks", samples, FileLoader(), scheme,
                           f"COCO-style JSON {ann.name} ({scheme}), {len(samples)} faces",
                           "; ".join(rule[r] for r in sorted(rules)))
