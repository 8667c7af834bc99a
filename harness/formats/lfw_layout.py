"""Where a copy of LFW keeps its pairs file and its identity folders.

The one finder every tool uses (the ``lfw`` and ``mesh`` datasets,
``harness data inspect``), so a layout one accepts the others accept too:

* a folder holding ``pairs.txt`` and an images folder (:data:`IMAGE_DIRS`:
  ``lfw_funneled/`` as in scikit-learn's ``lfw_home``, ``lfw-deepfunneled/``,
  ``lfw/``, ``lfw-funneled/``, ``images/``), or holding the identity folders
  themselves;
* its parent (scikit-learn's ``data_home``) holding ``lfw_home/``;
* a pairs file, with the images beside it as above.

This module is floor 1: standard library and :mod:`harness.errors` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from harness.errors import DataError

__all__ = ["IMAGE_DIRS", "LfwLayout", "find_lfw", "images_in", "is_lfw_folder", "lfw_home", "locate_lfw"]

IMAGE_DIRS = ("lfw_funneled", "lfw-deepfunneled", "lfw", "lfw-funneled", "images")
"""Names of the identity-folder root inside an LFW home, in order of preference."""


@dataclass(frozen=True)
class LfwLayout:
    """A resolved LFW copy: its pairs file (``None`` when it has none) and images folder."""

    pairs_file: Path | None
    image_dir: Path


def lfw_home(path: str | Path) -> Path:
    """``path``, or ``path/lfw_home`` when ``path`` is scikit-learn's ``data_home``."""
    path = Path(path)
    if path.is_dir() and not (path / "pairs.txt").exists() and (path / "lfw_home").is_dir():
        return path / "lfw_home"
    return path


def is_lfw_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder laid out as LFW (pairs.txt, or a ``lfw_home`` inside)."""
    path = Path(path)
    return path.is_dir() and ((path / "pairs.txt").is_file() or (path / "lfw_home").is_dir())


def images_in(*bases: Path) -> Path | None:
    """The first :data:`IMAGE_DIRS` folder inside one of ``bases``, or None."""
    return next((b / d for b in bases for d in IMAGE_DIRS if (b / d).is_dir()), None)


def find_lfw(path: str | Path, pairs: str | Path = "", images: str | Path = "", *,
             need_pairs: bool = True) -> LfwLayout:
    """Resolve any accepted layout (see the module docstring).

    :param pairs: a pairs file of one's own; images still come from ``path``.
    :param images: the identity-folder root, overriding the search.
    :param need_pairs: a missing pairs file is an error; otherwise it is
        ``None`` in the result.
    :raises DataError: the pairs file (when needed) or the images folder is missing.
    """
    path = lfw_home(path)
    if pairs:
        pairs_file = Path(pairs)
    elif path.is_file():
        pairs_file = path
    else:
        pairs_file = path / "pairs.txt"
    if not pairs_file.is_file():
        if need_pairs:
            raise DataError(
                f"{pairs_file}: LFW pairs file not found; expected pairs.txt in {path} "
                "(or pass -o lfw.pairs=/path/to/pairs.txt)"
            )
        pairs_file = None
    base = pairs_file.parent if (pairs_file is not None and (path.is_file() or pairs)) else path
    if images:
        image_dir = Path(images)
    else:
        # a pairs file of one's own (-o lfw.pairs=...) still reads the images of the dataset folder given
        bases = [path, base] if (pairs and path.is_dir()) else [base]
        image_dir = images_in(*bases) or base
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: LFW images folder not found (pass -o lfw.images=...)")
    return LfwLayout(pairs_file, image_dir)


def locate_lfw(path: str | Path, pairs: str | Path = "", images: str | Path = "") -> tuple[Path, Path]:
    """(pairs file, images folder) for any accepted layout; both must exist."""
    layout = find_lfw(path, pairs, images)
    return cast(Path, layout.pairs_file), layout.image_dir
