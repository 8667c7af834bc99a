"""Text ground truth of face-detection benchmarks: WIDER ``labelv2`` and FDDB ellipses.

WIDER FACE ``labelv2`` (as in libfacedetection.train / RetinaFace)::

    # 0--Parade/0_Parade_marchingband_1_465.jpg 1024 678
    345 211 349 215                      x1 y1 x2 y2 [+ 5 landmarks x y ...]

FDDB ``FDDB-fold-NN-ellipseList.txt``::

    2002/08/11/big/img_591               image path, no extension
    1                                    number of faces
    123.58 85.55 1.266 269.69 161.78  1  major radius, minor radius, angle, cx, cy, 1

An ellipse is turned into the axis-aligned box that bounds it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.formats._fields import ascii_int

__all__ = ["EllipseImage", "LabelV2Image", "ellipse_to_box", "parse_fddb_ellipses", "parse_labelv2"]


@dataclass
class LabelV2Image:
    path: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2
    landmarks: np.ndarray | None = None  # (N, 5, 2) where given (-1 = missing)


_MAX_SIDE = 1 << 20  # image sides and face counts above this are not real annotations


def _read_lines(p: Path, what: str) -> list[str]:
    try:
        return p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{p}: {what} file not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); expected a {what} "
                        "file") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read the {what} file ({exc.strerror or exc})") from None


_MAX_COORD = 1e9  # pixel coordinates, radii and angles beyond this are corrupt


def _finite_floats(tokens: list[str]) -> list[float] | None:
    """The tokens as floats of magnitude at most 1e9, or None when one is not."""
    try:
        vals = [float(t) for t in tokens]
    except ValueError:
        return None
    return vals if all(abs(v) <= _MAX_COORD for v in vals) else None


def parse_labelv2(path: str | os.PathLike) -> list[LabelV2Image]:
    """Parse a WIDER ``labelv2`` file.

    :raises DataError: naming the file and line of a malformed entry.
    """
    p = Path(path)
    lines = _read_lines(p, "WIDER labelv2")
    out: list[LabelV2Image] = []
    cur: dict | None = None

    def flush() -> None:
        if cur is not None:
            boxes = np.asarray(cur["boxes"], np.float32).reshape(-1, 4)
            lms = cur["lms"]
            land = np.asarray(lms, np.float32).reshape(-1, 5, 2) if lms and len(lms) == len(boxes) else None
            out.append(LabelV2Image(cur["path"], cur["w"], cur["h"], boxes, land))

    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            flush()
            toks = line[1:].split()
            w = ascii_int(toks[1], hi=_MAX_SIDE) if len(toks) == 3 else None
            h = ascii_int(toks[2], hi=_MAX_SIDE) if len(toks) == 3 else None
            if w is None or h is None:
                raise DataError(f"{p}, line {lineno}: {line[:80]!r}; expected '# <path> <width> <height>' "
                                f"with whole-number sizes up to {_MAX_SIDE:,}")
            cur = {"path": toks[0], "w": w, "h": h, "boxes": [], "lms": []}
            continue
        if cur is None:
            raise DataError(f"{p}, line {lineno}: box line before any '# <path> W H' header")
        vals = _finite_floats(line.split())
        if vals is None:
            raise DataError(f"{p}, line {lineno}: {line[:80]!r}; expected numbers 'x1 y1 x2 y2 [landmarks]' "
                            f"(finite, at most {_MAX_COORD:g} in magnitude)")
        if len(vals) < 4:
            raise DataError(f"{p}, line {lineno}: {len(vals)} numbers; expected at least x1 y1 x2 y2")
        cur["boxes"].append(vals[:4])
        if len(vals) >= 14:
            cur["lms"].append(vals[4:14])
    flush()
    return out


def ellipse_to_box(ra: float, rb: float, theta: float, cx: float, cy: float) -> tuple[float, float, float, float]:
    """The axis-aligned box (x1, y1, x2, y2) bounding an ellipse whose radius
    ``ra`` lies along angle ``theta`` (radians) and ``rb`` across it."""
    c, s = math.cos(theta), math.sin(theta)
    hw = math.sqrt((ra * c) ** 2 + (rb * s) ** 2)
    hh = math.sqrt((ra * s) ** 2 + (rb * c) ** 2)
    return cx - hw, cy - hh, cx + hw, cy + hh


@dataclass
class EllipseImage:
    path: str
    ellipses: np.ndarray  # (N, 5) ra rb theta cx cy
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


def parse_fddb_ellipses(path: str | os.PathLike) -> list[EllipseImage]:
    """Parse one FDDB ``*-ellipseList.txt`` file.

    :raises DataError: naming the file and line of a malformed entry.
    """
    p = Path(path)
    lines = [ln.strip() for ln in _read_lines(p, "FDDB ellipse")]
    out: list[EllipseImage] = []
    i = 0
    n = len(lines)
    while i < n:
        if not lines[i]:
            i += 1
            continue
        name = lines[i]
        count = ascii_int(lines[i + 1], hi=_MAX_SIDE) if i + 1 < n else None
        if count is None:
            raise DataError(f"{p}, line {i + 2}: expected the face count (a whole number) after {name[:80]!r}")
        ells = []
        for j in range(count):
            k = i + 2 + j
            if k >= n:
                raise DataError(f"{p}, line {k + 1}: file ends inside {name[:80]!r} ({j} of {count} ellipses)")
            vals = _finite_floats(lines[k].split()[:5])
            if vals is None or len(vals) < 5:
                raise DataError(f"{p}, line {k + 1}: {lines[k][:80]!r}; expected "
                                "'major_radius minor_radius angle center_x center_y 1' (finite numbers)")
            ells.append(vals)
        arr = np.asarray(ells, np.float64).reshape(-1, 5)
        boxes = np.asarray([ellipse_to_box(*e) for e in arr], np.float32).reshape(-1, 4)
        out.append(EllipseImage(name, arr.astype(np.float32), boxes))
        i += 2 + count
    return out
