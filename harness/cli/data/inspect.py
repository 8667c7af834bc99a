"""``harness data inspect``: say what a path is — format, identities, images,
image sizes, corrupt items.

:func:`inspect_path` detects the format and hands the path to one reader
per format; each fills the report and a :class:`Tally` of labels, sizes
and corrupt items, which :func:`_summarise` turns into the common fields.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import click
import numpy as np

from harness.cli.data._common import progress as _progress
from harness.errors import DataError

__all__ = ["command", "detect_format", "inspect_path"]

_VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


@dataclass
class Tally:
    """What the readers count: image sizes, images per label, corrupt items."""

    progress: bool | None
    decode: bool
    sizes: Counter = field(default_factory=Counter)
    labels: Counter = field(default_factory=Counter)
    corrupt: list[str] = field(default_factory=list)

    def check(self, items: Iterable[tuple[str, int, bytes]], total: int, decode: bool | None = None) -> int:
        """Decode (or read the header of) each (where, label, blob); the number seen."""
        from harness.formats.images import decode_image, image_size

        decode = self.decode if decode is None else decode
        n = 0
        for where, label, blob in _progress(items, total, "inspect", self.progress):
            n += 1
            self.labels[label] += 1
            try:
                if decode:
                    img = decode_image(blob, where=where)
                    self.sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
                else:
                    wh = image_size(blob)
                    self.sizes[f"{wh[0]}x{wh[1]}" if wh else "unknown"] += 1
            except DataError as exc:
                self.corrupt.append(str(exc))
        return n


# ------------------------------------------------------------ detection
def _pairs_beside_lfw_images(path: Path) -> bool:
    """A pairs file whose LFW images lie beside it (a layout the lfw dataset accepts)."""
    from harness.formats.lfw_layout import find_lfw
    from harness.formats.pairs import parse_pairs

    try:
        parsed = parse_pairs(path, skip_bad=True)
        layout = find_lfw(path)
    except DataError:
        return False
    return bool(parsed.pairs) and (layout.image_dir / parsed.pairs[0].name1).is_dir()


def _detect_folder(path: Path) -> str:
    from harness.formats.lfw_layout import is_lfw_folder

    if is_lfw_folder(path):
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


def detect_format(path: Path) -> str:
    """The format of ``path``: a folder's layout, a file's suffix, else its first bytes."""
    if path.is_dir():
        return _detect_folder(path)
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
        return "lfw" if _pairs_beside_lfw_images(path) else "pairs"
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


# -------------------------------------------------------------- readers
def _pairs_info(pairs_file: Path) -> tuple[dict[str, Any], Any]:
    """The pairs summary of an LFW-format file, and the parsed file (malformed lines skipped)."""
    from harness.formats.pairs import parse_pairs

    pf = parse_pairs(pairs_file, skip_bad=True)
    info = {"file": str(pairs_file), "folds": pf.folds, "per_fold": pf.per_fold, "pairs": len(pf.pairs),
            "genuine": sum(p.issame for p in pf.pairs), "protocol": pf.protocol}
    return info, pf


def _read_files(files: list[tuple[str, int, Path]], tally: Tally) -> Iterator[tuple[str, int, bytes]]:
    for where, k, f in files:
        try:
            blob = f.read_bytes()
        except OSError as exc:
            tally.corrupt.append(f"{f}: unreadable ({exc})")
            continue
        yield where, k, blob


def _inspect_folder(path: Path, out: dict[str, Any], tally: Tally) -> None:
    """Identity folders, plain (imagefolder / AT&T) or inside an LFW layout."""
    from harness.formats.folders import scan_identities
    from harness.formats.lfw_layout import find_lfw

    root = path
    if out["format"] == "lfw":
        layout = find_lfw(path, need_pairs=False)
        if layout.pairs_file is not None:
            info, pf = _pairs_info(layout.pairs_file)
            out["pairs"] = {**info, "malformed_lines": len(pf.skipped)}
        root = layout.image_dir
    ids = scan_identities(root)
    if out["format"] == "imagefolder" and all(i.name[:1] == "s" and i.name[1:].isdigit() for i in ids) and \
            all(f.suffix.lower() == ".pgm" for i in ids for f in i.files):
        out["format"] = "att"
    files = [(str(f), k, f) for k, i in enumerate(ids) for f in i.files]
    out["identities"] = len(ids)
    out["images"] = tally.check(_read_files(files, tally), len(files))
    out["images_folder"] = str(root)


def _inspect_rec(path: Path, out: dict[str, Any], tally: Tally) -> None:
    from harness.formats.recordio import read_insightface_rec, unpack

    rec_path = path
    if path.is_dir():
        rec_path = sorted(path.glob("*.rec"))[0]
    elif path.suffix == ".idx":
        rec_path = path.with_suffix(".rec")
    r = read_insightface_rec(rec_path, skip_bad=True)
    tally.corrupt.extend(r.skipped)
    out["records"] = len(r.reader)
    out["identity_ranges"] = len(r.ranges)
    out["insightface_header"] = bool(r.ranges) or len(r.keys) < len(r.reader)

    def items():
        for k, lab in zip(r.keys, r.labels):
            where = f"{rec_path}, record {k}"
            try:
                yield where, int(lab), unpack(r.reader.read_idx(k), where)[1]
            except DataError as exc:
                tally.corrupt.append(str(exc))

    out["images"] = tally.check(items(), len(r.keys))


def _inspect_tfrecord(path: Path, out: dict[str, Any], tally: Tally) -> None:
    from harness.formats._fields import label_limit
    from harness.formats.tfrecord import IMAGE_KEY, LABEL_KEY, TFRecordReader, decode_example, example_label

    tf_path = path if path.is_file() else sorted([*path.glob("*.tfrecord"), *path.glob("*.tfrecords")])[0]
    reader = TFRecordReader(tf_path, skip_bad=True)
    tally.corrupt.extend(reader.skipped)

    def items():
        for i in range(len(reader)):
            where = f"{tf_path}, record {i}"
            try:
                ex = decode_example(reader.read(i), where)
                labelled = bool(ex.get(LABEL_KEY) or ex.get("label"))
                label = example_label(ex, where, label_limit(len(reader))) if labelled else -1
                yield where, label, (ex.get(IMAGE_KEY) or [b""])[0]
            except DataError as exc:
                tally.corrupt.append(str(exc))

    out["records"] = len(reader)
    out["images"] = tally.check(items(), len(reader))


def _inspect_bin(path: Path, out: dict[str, Any], tally: Tally) -> None:
    from harness.formats.insightface_bin import load_bin

    blobs, issame = load_bin(path)
    out["pairs"] = {"pairs": len(issame), "genuine": int(sum(issame))}
    out["images"] = tally.check(((f"{path}, image {i}", -1, b) for i, b in enumerate(blobs)), len(blobs))
    tally.labels.clear()


def _inspect_pairs(path: Path, out: dict[str, Any], tally: Tally) -> None:
    info, pf = _pairs_info(path)
    del info["file"]
    tally.corrupt.extend(pf.skipped)
    out["pairs"] = info
    out["identities"] = len({n for p in pf.pairs for n in (p.name1, p.name2)})


def _inspect_video(path: Path, out: dict[str, Any], tally: Tally) -> None:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video")
    out["video"] = {"frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), "fps": cap.get(cv2.CAP_PROP_FPS),
                    "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                    "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))}
    cap.release()


def _inspect_image(path: Path, out: dict[str, Any], tally: Tally) -> None:
    out["images"] = tally.check([(str(path), -1, path.read_bytes())], 1, decode=True)
    tally.labels.clear()


def _inspect_wider(path: Path, out: dict[str, Any], tally: Tally) -> None:
    from harness.formats.detection import parse_labelv2

    lab = path / "labelv2_val.txt"
    if lab.is_file():
        entries = parse_labelv2(lab)
        out["annotations"] = {"images": len(entries), "faces": int(sum(len(e.boxes) for e in entries))}
    out["image_folders"] = [d.name for d in sorted(path.iterdir()) if d.is_dir()]


def _inspect_fddb(path: Path, out: dict[str, Any], tally: Tally) -> None:
    from harness.formats.detection import parse_fddb_ellipses

    folder = path / "FDDB-folds" if (path / "FDDB-folds").is_dir() else path
    entries = [e for f in sorted(folder.glob("FDDB-fold-*-ellipseList.txt")) for e in parse_fddb_ellipses(f)]
    out["annotations"] = {"images": len(entries), "faces": int(sum(len(e.boxes) for e in entries))}


_READERS: dict[str, Callable[[Path, dict[str, Any], Tally], None]] = {
    "imagefolder": _inspect_folder, "lfw": _inspect_folder, "rec": _inspect_rec, "tfrecord": _inspect_tfrecord,
    "bin": _inspect_bin, "pairs": _inspect_pairs, "video": _inspect_video, "image": _inspect_image,
    "wider": _inspect_wider, "fddb": _inspect_fddb,
}


def _summarise(out: dict[str, Any], tally: Tally, fmt: str) -> dict[str, Any]:
    """Identities, images per identity, image sizes and corrupt items from ``tally``."""
    if tally.labels and fmt not in ("imagefolder", "lfw"):
        out["identities"] = len(tally.labels)
    if tally.labels:
        counts = np.asarray(list(tally.labels.values()))
        out["images_per_identity"] = {"min": int(counts.min()), "median": float(np.median(counts)),
                                      "max": int(counts.max())}
    if tally.sizes:
        common = tally.sizes.most_common(10)
        out["image_sizes"] = dict(common)
        if len(tally.sizes) > 10:
            out["image_sizes"]["(other)"] = sum(tally.sizes.values()) - sum(v for _, v in common)
    out["corrupt"] = len(tally.corrupt)
    out["corrupt_items"] = tally.corrupt[:50]
    return out


def inspect_path(path: Path, progress: bool | None = None, decode: bool = True) -> dict[str, Any]:
    """What ``path`` holds, as the dict ``harness data inspect --json`` prints."""
    fmt = detect_format(path)
    out: dict[str, Any] = {"path": str(path), "format": fmt}
    tally = Tally(progress, decode)
    _READERS[fmt](path, out, tally)
    return _summarise(out, tally, fmt)


def _print(info: dict[str, Any]) -> None:
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


@click.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--no-decode", is_flag=True, help="Read image sizes from headers only (faster; "
              "does not find corrupt pixel data).")
@click.option("--progress/--no-progress", default=None)
def command(path: Path, as_json: bool, no_decode: bool, progress: bool | None) -> None:
    """Say what PATH is: format, identities, images, image sizes, corrupt files."""
    info = inspect_path(path, progress, decode=not no_decode)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print(info)
