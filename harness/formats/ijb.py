"""IJB-B / IJB-C protocol files, in the layout insightface's IJB evaluation reads.

Expected under ``root`` (``P`` is ``ijbb`` or ``ijbc``, found from the first file)::

    meta/P_face_tid_mid.txt         one line per face image: NAME TEMPLATE_ID MEDIA_ID
    meta/P_template_pair_label.txt  1:1 template pairs: TEMPLATE_ID TEMPLATE_ID LABEL (1 mated, 0 not)
    meta/P_name_5pts_score.txt      optional: NAME x1 y1 ... x5 y5 SCORE (five landmarks of the loose crop)
    meta/P_1N_gallery_G1.csv        optional (1:N): header, then TEMPLATE_ID,SUBJECT_ID,... per image
    meta/P_1N_gallery_G2.csv        optional (1:N): the second, disjoint gallery
    meta/P_1N_probe_mixed.csv       optional (1:N): probe templates (mixed media), same columns
    loose_crop/NAME                 the face images (loose crops)

Every file is read whole and checked: a malformed line is a :class:`DataError` naming the file and
line.  The 1:N files are read only when all three are present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

__all__ = ["IjbMeta", "find_prefix", "read_ijb"]


@dataclass
class IjbMeta:
    """The protocol of one IJB release.

    :param names: (N,) image names under ``loose_crop/``.
    :param templates, medias: (N,) template and media id of each image.
    :param pairs: (P, 2) template ids of the 1:1 pairs; ``labels`` (P,) 1 mated, 0 not.
    :param landmarks: (N, 5, 2) five points per image, or None; ``scores`` (N,) their detector scores.
    :param galleries: ``{"G1": (templates, subjects), "G2": …}`` for 1:N, or empty.
    :param probes: ``(templates, subjects)`` of the 1:N probes, or None.
    """

    root: Path
    prefix: str
    names: list[str]
    templates: np.ndarray
    medias: np.ndarray
    pairs: np.ndarray
    labels: np.ndarray
    landmarks: np.ndarray | None = None
    scores: np.ndarray | None = None
    galleries: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    probes: tuple[np.ndarray, np.ndarray] | None = None


def find_prefix(root: Path) -> str:
    """``ijbb`` or ``ijbc``: the prefix of ``meta/*_face_tid_mid.txt``."""
    found = sorted(p.name[: -len("_face_tid_mid.txt")] for p in (Path(root) / "meta").glob("*_face_tid_mid.txt"))
    if len(found) != 1:
        raise DataError(f"{root}: expected one meta/<ijbb|ijbc>_face_tid_mid.txt, found "
                        f"{found or 'none'}; point at the IJB release folder holding meta/ and loose_crop/")
    return found[0]


def _rows(path: Path, ncols: int, *, sep: str | None = None, header: bool = False) -> list[list[str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    out = []
    for n, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        if not line.strip():
            continue
        cols = [c.strip() for c in (line.split(sep) if sep else line.split())]
        if len(cols) < ncols:
            raise DataError(f"{path}, line {n}: {len(cols)} column(s), expected at least {ncols}: {line[:80]!r}")
        out.append(cols)
    return out


def _ints(rows: list[list[str]], col: int, path: Path) -> np.ndarray:
    try:
        return np.array([int(r[col]) for r in rows], np.int64)
    except ValueError:
        bad = next(r for r in rows if not r[col].lstrip("-").isdigit())
        raise DataError(f"{path}: column {col + 1} holds {bad[col]!r}; expected an integer id") from None


def _template_subjects(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unique (template, subject) of a 1:N csv (one row per image); a template of two subjects is an error."""
    rows = _rows(path, 2, sep=",", header=True)
    t, s = _ints(rows, 0, path), _ints(rows, 1, path)
    pairs = np.unique(np.stack([t, s], 1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise DataError(f"{path}: a template belongs to several subjects; expected one subject per template")
    return pairs[:, 0], pairs[:, 1]


def read_ijb(root: str | Path) -> IjbMeta:
    """Read the IJB layout under ``root`` (see the module docstring)."""
    root = Path(root)
    p = find_prefix(root)
    meta = root / "meta"
    tid_mid = meta / f"{p}_face_tid_mid.txt"
    rows = _rows(tid_mid, 3)
    if not rows:
        raise DataError(f"{tid_mid}: no face lines")
    names = [r[0] for r in rows]
    pair_file = meta / f"{p}_template_pair_label.txt"
    prow = _rows(pair_file, 3)
    pairs = np.stack([_ints(prow, 0, pair_file), _ints(prow, 1, pair_file)], 1) if prow else np.zeros((0, 2), int)
    labels = _ints(prow, 2, pair_file)
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{pair_file}: labels must be 0 or 1")
    out = IjbMeta(root, p, names, _ints(rows, 1, tid_mid), _ints(rows, 2, tid_mid), pairs, labels)
    unknown = np.setdiff1d(pairs.ravel(), out.templates)
    if unknown.size:
        raise DataError(f"{pair_file}: template {int(unknown[0])} has no face in {tid_mid.name}")
    pts = meta / f"{p}_name_5pts_score.txt"
    if pts.is_file():
        lm = {r[0]: r[1:12] for r in _rows(pts, 12)}
        missing = [n for n in names if n not in lm]
        if missing:
            raise DataError(f"{pts}: no landmarks for {missing[0]!r} ({len(missing)} image(s) missing)")
        vals = np.array([[float(v) for v in lm[n]] for n in names])
        out.landmarks, out.scores = vals[:, :10].reshape(-1, 5, 2).astype(np.float32), vals[:, 10]
    one_n = [meta / f"{p}_1N_gallery_G1.csv", meta / f"{p}_1N_gallery_G2.csv", meta / f"{p}_1N_probe_mixed.csv"]
    if all(f.is_file() for f in one_n):
        out.galleries = {"G1": _template_subjects(one_n[0]), "G2": _template_subjects(one_n[1])}
        out.probes = _template_subjects(one_n[2])
    return out
