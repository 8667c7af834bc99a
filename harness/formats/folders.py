"""Identity folders: ``root/<identity>/<image>``, and how pair numbers resolve.

Two naming schemes are understood, the same ones :mod:`harness.formats.pairs`
writes:

* LFW: ``Name/Name_0001.jpg`` — image number ``1``;
* numbered files: ``s1/1.pgm`` (AT&T / ORL) — the file stem is the number.

A pair line's ``name n`` resolves to ``name/name_%04d.<ext>`` first, then
``name/<n>.<ext>``; it never depends on folder listing order (scikit-learn's
``fetch_lfw_pairs`` does, which breaks on partial copies of LFW).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import DataError
from harness.formats.images import IMAGE_EXTENSIONS, is_image_file

__all__ = ["Identity", "image_number", "resolve_image", "scan_identities"]

_TRAILING_NUMBER = re.compile(r"(\d+)$")


def image_number(path: str | os.PathLike, identity: str | None = None) -> int | None:
    """The image number of a file: ``Name_0003.jpg`` -> 3, ``7.pgm`` -> 7, else None."""
    stem = Path(path).stem
    if identity is not None and stem.startswith(identity + "_"):
        rest = stem[len(identity) + 1:]
        return int(rest) if rest.isdigit() else None
    if stem.isdigit():
        return int(stem)
    m = _TRAILING_NUMBER.search(stem)
    if m and (len(m.group(1)) < len(stem)) and stem[m.start() - 1] in "_-":
        return int(m.group(1))
    return None


@dataclass
class Identity:
    """One identity folder: its name and its image files, sorted by number then name."""

    name: str
    files: list[Path] = field(default_factory=list)
    numbers: list[int | None] = field(default_factory=list)


def _sort_key(p: Path, identity: str) -> tuple:
    n = image_number(p, identity)
    return (n is None, n if n is not None else 0, p.name)


def scan_identities(root: str | os.PathLike, min_images: int = 1) -> list[Identity]:
    """Every sub-folder of ``root`` holding images, sorted by name.

    :raises DataError: ``root`` is not a folder or holds no identity folder.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(
            f"{base}: not a folder; expected one sub-folder of images per identity "
            "(root/<identity>/<image>.jpg)"
        )
    out: list[Identity] = []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        files = [Path(f.path) for f in os.scandir(entry.path) if f.is_file() and is_image_file(f.name)]
        if len(files) < min_images:
            continue
        files.sort(key=lambda p: _sort_key(p, entry.name))
        out.append(Identity(entry.name, files, [image_number(p, entry.name) for p in files]))
    if not out:
        raise DataError(
            f"{base}: no identity folders with images (looked for sub-folders holding "
            f"{', '.join(IMAGE_EXTENSIONS)} files); expected root/<identity>/<image>"
        )
    return out


def resolve_image(root: str | os.PathLike, name: str, number: int, where: str = "") -> Path:
    """The file a pair's ``name number`` refers to under ``root``.

    Tries ``name/name_%04d.<ext>`` (LFW), then ``name/<number>.<ext>`` (AT&T).

    :raises DataError: no such file (the message names both patterns tried).
    """
    folder = Path(root) / name
    stems = (f"{name}_{number:04d}", str(number))
    for stem in stems:
        for ext in (".jpg", ".png", ".pgm", ".jpeg", ".bmp", ".ppm", ".webp", ".tif", ".tiff"):
            candidate = folder / (stem + ext)
            if candidate.is_file():
                return candidate
    prefix = f"{where}: " if where else ""
    raise DataError(
        f"{prefix}image {name!r} #{number} not found: tried {folder / stems[0]}.* and "
        f"{folder / stems[1]}.*; check that the images folder matches the pairs file "
        "(LFW names files Name/Name_0001.jpg; numbered layouts use s1/1.pgm)"
    )
