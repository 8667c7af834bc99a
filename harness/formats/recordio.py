"""MXNet RecordIO (``.rec`` + ``.idx``), pure Python — no mxnet needed.

Framing (dmlc-core ``recordio``), all little-endian::

    uint32 magic = 0xced7230a
    uint32 lrecord = cflag << 29 | length     (length < 2**29)
    length bytes of data, then zero padding to a multiple of 4

``cflag`` 0 is a whole record.  dmlc's writer splits a record wherever the
magic number appears in the data at a 4-byte aligned offset: the parts carry
cflag 1 (first), 2 (middle), 3 (last), the magic itself is dropped and the
reader puts it back between parts.  This module writes and reads exactly that.

The ``.idx`` file is text, one ``key<TAB>byte offset`` line per record
(``MXIndexedRecordIO``).

Image records (``mx.recordio.pack``) start with an ``IRHeader`` packed as
``<IfQQ`` (24 bytes): ``flag``, ``label`` (float32), ``id``, ``id2``.  When
``flag > 0`` the label is an array of ``flag`` float32 values that follow the
header (and ``label`` is written as 0).

insightface's training ``.rec`` (what :func:`write_insightface_rec` writes):

* record 0: header only, ``flag=2``, ``label=(N + 1, N + 1 + K)`` for N
  images and K identities — images are records ``1 .. N``, identity records
  ``N + 1 .. N + K``;
* records ``1 .. N``: ``flag=0``, ``label=float(class)``, ``id=index``, then
  the encoded image, grouped by identity;
* records ``N + 1 .. N + K``: ``flag=2``, ``label=(first, last + 1)`` — the
  image index range of one identity (read by insightface's triplet / PK
  samplers);
* a ``property`` text file beside them: ``K,H,W``.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence

import numpy as np

from harness.errors import DataError
from harness.atomic import atomic_paths
from harness.formats._fields import ascii_int, class_label, label_limit

__all__ = [
    "IRHeader",
    "MAGIC",
    "RecordIOReader",
    "RecordIOWriter",
    "pack",
    "parse_idx",
    "read_insightface_rec",
    "unpack",
    "write_insightface_rec",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_IR_FORMAT = "<IfQQ"
_IR_SIZE = struct.calcsize(_IR_FORMAT)  # 24
_MAX_LEN = (1 << 29) - 1
_FRAME = 8  # magic + lrecord: the least room any record takes in a .rec
_IDX_LINE = re.compile(r"\s*(\S+)\s+(\S+)\s*")


@dataclass(frozen=True)
class IRHeader:
    """mx.recordio.IRHeader: ``label`` is a float, or a tuple of floats when ``flag > 0``."""

    flag: int
    label: float | tuple[float, ...]
    id: int
    id2: int = 0


def pack(header: IRHeader, payload: bytes = b"") -> bytes:
    """``mx.recordio.pack``: header (+ float32 label array when a tuple) + payload."""
    label = header.label
    if isinstance(label, (tuple, list, np.ndarray)):
        arr = np.asarray(label, dtype="<f4").reshape(-1)
        return struct.pack(_IR_FORMAT, arr.size, 0.0, header.id, header.id2) + arr.tobytes() + payload
    return struct.pack(_IR_FORMAT, 0, float(label), header.id, header.id2) + payload


def unpack(record: bytes, where: str = "<record>") -> tuple[IRHeader, bytes]:
    """``mx.recordio.unpack``: (header, payload)."""
    if len(record) < _IR_SIZE:
        raise DataError(f"{where}: record of {len(record)} bytes is shorter than the "
                        f"{_IR_SIZE}-byte IRHeader; the .rec is corrupt")
    flag, label, rid, rid2 = struct.unpack_from(_IR_FORMAT, record, 0)
    body = record[_IR_SIZE:]
    if flag > 0:
        if len(body) < 4 * flag:
            raise DataError(f"{where}: IRHeader flag={flag} promises {flag} float32 labels but "
                            f"only {len(body)} bytes follow; the .rec is corrupt")
        arr = np.frombuffer(body[: 4 * flag], dtype="<f4")
        return IRHeader(flag, tuple(float(x) for x in arr), rid, rid2), body[4 * flag:]
    return IRHeader(flag, float(label), rid, rid2), body


class RecordIOWriter:
    """Append records to a binary stream in dmlc RecordIO framing."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.offset = stream.tell()

    def write(self, data: bytes) -> int:
        """Write one record; returns the byte offset it starts at (for the .idx)."""
        data = bytes(data)
        n = len(data)
        if n > _MAX_LEN:
            raise ValueError(f"a RecordIO record holds at most {_MAX_LEN} bytes, got {n}")
        start = self.offset
        out = bytearray()
        dptr = 0
        lower = n - n % 4
        # split at every 4-byte aligned occurrence of the magic (dmlc WriteRecord)
        i = data.find(_MAGIC_BYTES, 0, lower)
        while i != -1:
            if i % 4 == 0:
                cflag = 1 if dptr == 0 else 2
                out += _MAGIC_BYTES + struct.pack("<I", (cflag << 29) | (i - dptr)) + data[dptr:i]
                dptr = i + 4
                i = data.find(_MAGIC_BYTES, dptr, lower)
            else:
                i = data.find(_MAGIC_BYTES, i + 1, lower)
        cflag = 3 if dptr != 0 else 0
        out += _MAGIC_BYTES + struct.pack("<I", (cflag << 29) | (n - dptr)) + data[dptr:]
        out += b"\x00" * (-n % 4)
        self.stream.write(out)
        self.offset += len(out)
        return start


def parse_idx(text: str, where: str = "<.idx>", rec_name: str = "the .rec") -> dict[int, int]:
    """``{key: byte offset}`` from the text of an ``.idx`` (``key<TAB>offset`` lines).

    :raises DataError: naming ``where`` and the line: not two whole numbers of
        1-18 ASCII digits, or an offset that is not 4-byte aligned.
    """
    out: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _IDX_LINE.fullmatch(line)
        key, off = (ascii_int(m.group(1)), ascii_int(m.group(2))) if m else (None, None)
        if key is None or off is None:
            raise DataError(f"{where}, line {lineno}: {line[:80]!r} is not 'key<TAB>offset' (two whole "
                            "numbers of at most 18 ASCII digits); regenerate the .idx")
        if off % 4:
            raise DataError(f"{where}, line {lineno}: offset {off} is not 4-byte aligned, so it cannot "
                            f"start a record of {rec_name}; the .idx does not belong to this .rec — "
                            "regenerate it")
        # an offset past the end is reported as a truncated record when read
        out[key] = off
    return out


class RecordIOReader:
    """Read a ``.rec`` (memory-mapped), by offset, by ``.idx`` key, or sequentially.

    :param path: the ``.rec`` file.
    :param idx_path: its ``.idx``; default: the same name with ``.idx``, when it
        exists.  Without one, records are found by scanning the file.
    """

    def __init__(self, path: str | os.PathLike, idx_path: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")
        except FileNotFoundError:
            raise DataError(f"{self.path}: .rec file not found") from None
        size = os.fstat(self._fh.fileno()).st_size
        self.size = size
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        if idx_path is None:
            cand = self.path.with_suffix(".idx")
            idx_path = cand if cand.is_file() else None
        self.idx_path = Path(idx_path) if idx_path else None
        try:
            self.index: dict[int, int] = self._read_idx() if self.idx_path else {}
            if not self.index:
                self.index = {k: off for k, off in enumerate(self.scan())}
        except BaseException:
            self.close()
            raise
        self.keys = sorted(self.index)

    # --------------------------------------------------------------- helpers
    def _read_idx(self) -> dict[int, int]:
        assert self.idx_path is not None
        try:
            text = self.idx_path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise DataError(f"{self.idx_path}: .idx file not found") from None
        except UnicodeDecodeError:
            raise DataError(f"{self.idx_path}: not a text .idx file; expected 'key<TAB>offset' lines") from None
        return parse_idx(text, str(self.idx_path), str(self.path))

    def read_at(self, offset: int, where: str | None = None) -> tuple[bytes, int]:
        """(record bytes, offset of the next record) for the record starting at ``offset``."""
        mm = self._mm
        where = where or f"{self.path}, record at byte {offset}"
        parts: list[bytes] = []
        pos = offset
        while True:
            if pos + 8 > self.size:
                raise DataError(f"{where}: truncated — the record header needs 8 bytes at "
                                f"{pos} but the file ends at {self.size}; re-create the .rec "
                                "(or read with --skip-bad)")
            magic, lrec = struct.unpack_from("<II", mm, pos)
            if magic != MAGIC:
                raise DataError(f"{where}: bad magic 0x{magic:08x} at byte {pos}, expected "
                                f"0x{MAGIC:08x}; not a RecordIO file or corrupt")
            cflag, length = lrec >> 29, lrec & _MAX_LEN
            if cflag > 3:
                raise DataError(f"{where}: invalid continue flag {cflag} at byte {pos}")
            end = pos + 8 + length
            if end > self.size:
                raise DataError(f"{where}: truncated — the record needs {length} bytes after "
                                f"byte {pos + 8} but the file ends at {self.size}; re-create "
                                "the .rec (or read with --skip-bad)")
            parts.append(bytes(mm[pos + 8:end]))
            pos = pos + 8 + ((length + 3) & ~3)
            if cflag in (0, 3):
                if len(parts) > 1 and cflag == 0:
                    raise DataError(f"{where}: multi-part record ended with flag 0; corrupt")
                break
            if cflag == 0:
                break
        return _MAGIC_BYTES.join(parts), pos

    def scan(self) -> Iterator[int]:
        """Offsets of every record, by walking the framing from the start."""
        pos = 0
        k = 0
        while pos < self.size:
            _rec, nxt = self.read_at(pos, where=f"{self.path}, record {k} (byte {pos})")
            yield pos
            pos = nxt
            k += 1

    def __len__(self) -> int:
        return len(self.keys)

    def read_idx(self, key: int) -> bytes:
        """The record stored under ``key`` (``MXIndexedRecordIO.read_idx``)."""
        try:
            off = self.index[key]
        except KeyError:
            raise DataError(f"{self.path}: no record with key {key} in {self.idx_path or 'the file'}") from None
        return self.read_at(off, where=f"{self.path}, record {key} (byte {off})")[0]

    def __iter__(self) -> Iterator[bytes]:
        for k in self.keys:
            yield self.read_idx(k)

    def close(self) -> None:
        if isinstance(self._mm, mmap.mmap):
            self._mm.close()
        self._fh.close()

    def __enter__(self) -> "RecordIOReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # picklable for DataLoader workers: reopen on unpickle
        return {"path": self.path, "idx_path": self.idx_path, "index": self.index}

    def __setstate__(self, state) -> None:
        self.path, self.idx_path, self.index = state["path"], state["idx_path"], state["index"]
        self._fh = open(self.path, "rb")
        self.size = os.fstat(self._fh.fileno()).st_size
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""
        self.keys = sorted(self.index)


def write_insightface_rec(
    prefix: str | os.PathLike,
    items: Iterable[tuple[int, bytes]],
    num_classes: int,
    image_size: tuple[int, int] | None = None,
) -> dict:
    """Write ``prefix.rec``, ``prefix.idx`` and ``property`` in insightface's layout.

    :param items: ``(label, encoded image bytes)``, labels 0..K-1, **grouped by
        label in increasing order** (insightface's identity ranges need that).
    :param image_size: (height, width) for the ``property`` file.
    :returns: a summary (images, identities, ranges).
    """
    prefix = Path(prefix)
    rec_path, idx_path = prefix.with_suffix(".rec"), prefix.with_suffix(".idx")
    prop_path = prefix.parent / "property"
    targets = [rec_path, idx_path] + ([prop_path] if image_size else [])
    with atomic_paths(*targets) as tmps:
        with open(tmps[0], "wb") as rec, open(tmps[1], "w") as idx:
            w = RecordIOWriter(rec)
            # placeholder record 0 of fixed size; rewritten once N is known
            header_len = len(_frame(pack(IRHeader(2, (0.0, 0.0), 0, 0))))
            rec.write(b"\x00" * header_len)
            w.offset = header_len
            ranges: list[tuple[int, int]] = []
            offsets: list[int] = []
            n = 0
            last = -1
            for label, data in items:
                label = int(label)
                if label < last:
                    raise ValueError(f"images must be grouped by label in increasing order; got {label} after {last}")
                if label >= num_classes or label < 0:
                    raise ValueError(f"label {label} outside 0..{num_classes - 1}")
                n += 1
                while len(ranges) <= label:
                    ranges.append((n, n))
                a, _b = ranges[label]
                ranges[label] = (a, n + 1)
                last = label
                offsets.append(w.write(pack(IRHeader(0, float(label), n, 0), data)))
            while len(ranges) < num_classes:
                ranges.append((n + 1, n + 1))
            id_offsets = []
            for k, (a, b) in enumerate(ranges):
                id_offsets.append(w.write(pack(IRHeader(2, (float(a), float(b)), n + 1 + k, 0))))
            header0 = _frame(pack(IRHeader(2, (float(n + 1), float(n + 1 + num_classes)), 0, 0)))
            assert len(header0) == header_len
            rec.seek(0)
            rec.write(header0)
            rec.flush()
            os.fsync(rec.fileno())
            idx.write(f"0\t0\n")
            for i, off in enumerate(offsets, 1):
                idx.write(f"{i}\t{off}\n")
            for k, off in enumerate(id_offsets):
                idx.write(f"{n + 1 + k}\t{off}\n")
        if image_size:
            Path(tmps[2]).write_text(f"{num_classes},{image_size[0]},{image_size[1]}\n")
    return {"images": n, "identities": num_classes, "ranges": ranges,
            "rec": str(rec_path), "idx": str(idx_path)}


def _frame(data: bytes) -> bytes:
    import io

    buf = io.BytesIO()
    RecordIOWriter(buf).write(data)
    return buf.getvalue()


@dataclass
class InsightfaceRec:
    """What :func:`read_insightface_rec` found: image keys, labels, identity ranges."""

    reader: RecordIOReader
    keys: list[int]
    labels: np.ndarray
    ranges: list[tuple[int, int]]
    skipped: list[str]


def _record_number(value: float, what: str, where: str, most: int, why: str) -> int:
    """A record number stored as a float32 label, checked to lie in ``0..most``."""
    if not (math.isfinite(value) and value.is_integer() and 0 <= value <= most):
        raise DataError(f"{where}: {what} {value!r} is not a record number in 0..{most} ({why}); "
                        "the .rec header is corrupt — re-create it")
    return int(value)


def _header_range(reader: RecordIOReader, h0: IRHeader) -> tuple[int, int]:
    """(first identity record, end) of an insightface record 0, checked against the file size."""
    where = f"{reader.path}, record 0 (insightface header)"
    label = h0.label if isinstance(h0.label, tuple) else (h0.label,)
    if len(label) < 2:
        raise DataError(f"{where}: flag={h0.flag} gives {len(label)} label value; the header holds two, "
                        "(first identity record, end) — the .rec is corrupt or not insightface's layout")
    most = reader.size // _FRAME  # every record takes at least its 8 framing bytes
    why = f"the most records a file of {reader.size} bytes can hold"
    first = _record_number(label[0], "first identity record", where, most, why)
    end = _record_number(label[1], "end of the identity records", where, most, why)
    if not 1 <= first <= end:
        raise DataError(f"{where}: identity records {first}..{end} are not a range after record 0; "
                        "expected (N + 1, N + 1 + K) for N images of K identities — the header is corrupt")
    return first, end


def _identity_ranges(reader: RecordIOReader, first: int, end: int, skip_bad: bool,
                     skipped: list[str]) -> list[tuple[int, int]]:
    """The (first, end) image range each identity record ``first .. end - 1`` holds."""
    ranges: list[tuple[int, int]] = []
    for k in range(first, end):
        if k not in reader.index:
            continue
        where = f"{reader.path}, record {k}"
        try:
            h, _ = unpack(reader.read_idx(k), where=where)
            if isinstance(h.label, tuple) and len(h.label) >= 2:
                why = f"images are records 1..{first - 1}"
                ranges.append((_record_number(h.label[0], "range start", where, first, why),
                               _record_number(h.label[1], "range end", where, first, why)))
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
    return ranges


def read_insightface_rec(path: str | os.PathLike, skip_bad: bool = False) -> InsightfaceRec:
    """Open an insightface ``.rec`` (or any MXNet image ``.rec``) and read every image label.

    With the insightface header (record 0 ``flag > 0``) images are records
    ``1 .. label[0] - 1``; otherwise every record of the ``.idx`` is an image.
    Every header field is checked against the file size before it is used,
    and labels must be whole class indices (below 65,536, or below the
    file's record count when that is larger).

    :raises DataError: a malformed header always; a bad image record unless
        ``skip_bad`` (then it is listed in ``skipped``).
    """
    reader = RecordIOReader(path)
    try:
        return _read_labels(reader, skip_bad)
    except BaseException:
        reader.close()
        raise


def _read_labels(reader: RecordIOReader, skip_bad: bool) -> InsightfaceRec:
    skipped: list[str] = []
    ranges: list[tuple[int, int]] = []
    if not reader.keys:
        return InsightfaceRec(reader, [], np.zeros(0, np.int64), [], skipped)
    h0, _ = unpack(reader.read_idx(reader.keys[0]), where=f"{reader.path}, record {reader.keys[0]}")
    limit = label_limit(len(reader.index))
    if reader.keys[0] == 0 and h0.flag > 0:
        first_id, end_id = _header_range(reader, h0)
        ranges = _identity_ranges(reader, first_id, end_id, skip_bad, skipped)
        image_keys: Sequence[int] = range(1, first_id)
        limit = max(limit, end_id - first_id)
    else:
        image_keys = list(reader.keys)
    keys: list[int] = []
    labels: list[int] = []
    for k in image_keys:
        where = f"{reader.path}, record {k}"
        try:
            if k not in reader.index:
                raise DataError(f"{where}: missing from {reader.idx_path or 'the file'} "
                                "although the header lists it; the .idx is incomplete")
            off = reader.index[k]
            h, _ = unpack(reader.read_at(off, where=where)[0], where=where)
            label = class_label(h.label[0] if isinstance(h.label, tuple) else h.label, where, limit)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
            continue
        keys.append(k)
        labels.append(label)
    return InsightfaceRec(reader, keys, np.asarray(labels, np.int64), ranges, skipped)
