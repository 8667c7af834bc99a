"""TFRecord files of ``tf.train.Example`` records, pure Python — no TensorFlow.

Framing of each record (little-endian)::

    uint64 length
    uint32 masked_crc32c(length bytes)
    length bytes of data
    uint32 masked_crc32c(data)

``masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8`` (mod 2**32)
over CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), computed here
with a table-driven implementation checked against RFC 3720 B.4.

Each record is a ``tf.train.Example`` protobuf, hand-encoded::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   # entries: key = 1, value = 2
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                       Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    Int64List { repeated int64 value = 1 [packed]; }
    FloatList { repeated float value = 1 [packed]; }

The training files written here hold ``image/encoded`` (bytes_list),
``image/class/label`` (int64_list) and ``image/format`` (bytes_list).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Mapping

import numpy as np

from harness.errors import DataError
from harness.atomic import atomic_output
from harness.formats._fields import class_label, label_limit

__all__ = [
    "TFRecordReader",
    "crc32c",
    "decode_example",
    "encode_example",
    "example_label",
    "masked_crc32c",
    "read_tfrecord_images",
    "write_tfrecord",
    "write_tfrecord_images",
]


# ---------------------------------------------------------------- CRC-32C
def _make_table() -> list[int]:
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def _update(c: int, data: bytes) -> int:
    """Advance the raw CRC register ``c`` over ``data`` (byte at a time, table-driven)."""
    table = _TABLE
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def _fast_impl():
    try:  # optional C implementation; never required
        import google_crc32c  # type: ignore[import-not-found]

        return lambda data: int(google_crc32c.value(data))
    except Exception:
        return None


_FAST = _fast_impl() if os.environ.get("FACEBENCH_PURE_CRC32C") != "1" else None

_CHUNK = 4096  # lane length of the vectorised path
_LANE_MIN = 1 << 18  # below this many bytes the scalar loop is faster


def _zero_tables(nbytes: int) -> np.ndarray:
    """(4, 256) tables of the linear map "run ``nbytes`` zero bytes through the register".

    The register update is linear over GF(2): ``update(r, d) = Z(r) ^ update(0, d)``;
    ``Z`` is tabulated byte by byte from its action on the 32 basis vectors.
    """
    basis = [_update(1 << i, bytes(nbytes)) for i in range(32)]
    tables = np.zeros((4, 256), np.uint32)
    for k in range(4):
        for v in range(256):
            acc = 0
            for bit in range(8):
                if v >> bit & 1:
                    acc ^= basis[8 * k + bit]
            tables[k, v] = acc
    return tables


_ZERO_CHUNK: np.ndarray | None = None


def _crc_lanes(c: int, data: bytes) -> int:
    """Register update over long data: many chunks advance in parallel (numpy), then
    the per-chunk registers are chained with the zero-run map."""
    global _ZERO_CHUNK
    if _ZERO_CHUNK is None:
        _ZERO_CHUNK = _zero_tables(_CHUNK)
    lanes = len(data) // _CHUNK
    block = np.frombuffer(data, np.uint8, lanes * _CHUNK).reshape(lanes, _CHUNK)
    table = np.asarray(_TABLE, np.uint32)
    reg = np.zeros(lanes, np.uint32)
    for j in range(_CHUNK):
        reg = table[(reg ^ block[:, j]) & 0xFF] ^ (reg >> np.uint32(8))
    z = _ZERO_CHUNK
    for r in reg.tolist():
        c = int(z[0, c & 0xFF] ^ z[1, (c >> 8) & 0xFF] ^ z[2, (c >> 16) & 0xFF] ^ z[3, c >> 24]) ^ r
    return _update(c, data[lanes * _CHUNK:])


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``; pass a previous value as ``crc`` to continue.

    Table-driven (reflected polynomial 0x82f63b78).  Inputs of 256 KiB or
    more run 4 KiB lanes side by side with numpy and chain them, which gives
    the same value (tests check both paths against each other and RFC 3720
    B.4).  When the optional ``google_crc32c`` package is installed its C
    implementation is used instead (same function, faster).
    """
    data = bytes(data)
    if _FAST is not None and crc == 0:
        return _FAST(data)
    c = crc ^ 0xFFFFFFFF
    if len(data) >= _LANE_MIN:
        c = _crc_lanes(c, data)
    else:
        c = _update(c, data)
    return c ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------- protobuf
def _varint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1  # int64 two's complement, 10 bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: Mapping[str, Any]) -> bytes:
    """Encode a ``tf.train.Example``.

    Values: ``bytes`` / ``str`` or a list of them -> bytes_list; ``int`` or a
    list of ints -> int64_list; ``float`` or a list of floats -> float_list.
    """
    entries = b""
    for key in sorted(features):
        value = features[key]
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
        if all(isinstance(v, (bytes, bytearray, str)) for v in values):
            body = b"".join(_field(1, v.encode() if isinstance(v, str) else bytes(v)) for v in values)
            feature = _field(1, body)
        elif all(isinstance(v, (bool, int, np.integer)) for v in values):
            packed = b"".join(_varint(int(v)) for v in values)
            feature = _field(3, _field(1, packed) if values else b"")
        elif all(isinstance(v, (float, int, np.floating, np.integer)) for v in values):
            packed = struct.pack(f"<{len(values)}f", *[float(v) for v in values])
            feature = _field(2, _field(1, packed) if values else b"")
        else:
            raise TypeError(f"feature {key!r}: cannot encode values of type {type(values[0]).__name__}")
        entries += _field(1, _field(1, key.encode()) + _field(2, feature))
    return _field(1, entries)


class _ProtoError(ValueError):
    pass


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a message; skips unknown wire types 0, 1, 2, 5."""
    pos = 0
    n = len(buf)
    while pos < n:
        tag, pos = _read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _ProtoError("field number 0")
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise _ProtoError("truncated fixed64")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > n:
                raise _ProtoError(f"length-delimited field of {length} bytes runs past the message end")
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            if pos + 4 > n:
                raise _ProtoError("truncated fixed32")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        yield number, wire, value


def _signed64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _decode_feature(buf: bytes) -> list:
    for number, wire, value in _fields(buf):
        if number == 1 and wire == 2:  # BytesList
            return [bytes(v) for num, w, v in _fields(value) if num == 1 and w == 2]
        if number == 3 and wire == 2:  # Int64List, packed or not
            out: list = []
            for num, w, v in _fields(value):
                if num != 1:
                    continue
                if w == 0:
                    out.append(_signed64(v))
                elif w == 2:
                    p = 0
                    while p < len(v):
                        x, p = _read_varint(v, p)
                        out.append(_signed64(x))
            return out
        if number == 2 and wire == 2:  # FloatList
            fl: list = []
            for num, w, v in _fields(value):
                if num != 1:
                    continue
                if w == 5:
                    fl.append(struct.unpack("<f", v)[0])
                elif w == 2:
                    if len(v) % 4:
                        raise _ProtoError("packed float list length is not a multiple of 4")
                    fl.extend(struct.unpack(f"<{len(v) // 4}f", v))
            return fl
    return []


def decode_example(data: bytes, where: str = "<record>") -> dict[str, list]:
    """Decode a ``tf.train.Example`` to ``{key: list of bytes / int / float}``.

    :raises DataError: the bytes are not a valid Example.
    """
    try:
        out: dict[str, list] = {}
        for number, wire, features in _fields(bytes(data)):
            if number != 1 or wire != 2:
                continue
            for num, w, entry in _fields(features):
                if num != 1 or w != 2:
                    continue
                key, value = None, b""
                for n2, w2, v2 in _fields(entry):
                    if n2 == 1 and w2 == 2:
                        key = bytes(v2).decode("utf-8")
                    elif n2 == 2 and w2 == 2:
                        value = v2
                if key is None:
                    raise _ProtoError("feature map entry without a key")
                out[key] = _decode_feature(value)
        return out
    except (_ProtoError, UnicodeDecodeError, struct.error) as exc:
        raise DataError(f"{where}: not a valid tf.train.Example ({exc}); the file is corrupt "
                        "or holds another message type") from None


# ---------------------------------------------------------------- framing
def _frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_tfrecord(path: str | os.PathLike, records: Iterable[bytes]) -> int:
    """Write raw records atomically; returns how many were written."""
    n = 0
    with atomic_output(path, "wb") as fh:
        for rec in records:
            fh.write(_frame(bytes(rec)))
            n += 1
    return n


class TFRecordReader:
    """Scan a TFRecord file once (offsets), then read records by index.

    The length CRC of every record is checked while scanning; the data CRC
    is checked when a record is read (``verify=True``).
    """

    def __init__(self, path: str | os.PathLike, verify: bool = True, skip_bad: bool = False) -> None:
        self.path = Path(path)
        self.verify = verify
        self.skipped: list[str] = []
        try:
            self.size = self.path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{self.path}: TFRecord file not found") from None
        self.offsets: list[tuple[int, int]] = []  # (data offset, length)
        with open(self.path, "rb") as fh:
            pos = 0
            k = 0
            while pos < self.size:
                head = fh.read(12)
                where = f"{self.path}, record {k} (byte {pos})"
                try:
                    if len(head) < 12:
                        raise DataError(f"{where}: truncated — {len(head)} of the 12 header bytes; "
                                        "the file was cut short (re-create it or use --skip-bad)")
                    (length,) = struct.unpack_from("<Q", head)
                    (crc,) = struct.unpack_from("<I", head, 8)
                    if crc != masked_crc32c(head[:8]):
                        raise DataError(f"{where}: length CRC mismatch; not a TFRecord file or corrupt")
                    if pos + 12 + length + 4 > self.size:
                        raise DataError(f"{where}: truncated — record of {length} bytes runs past the "
                                        f"end of the file ({self.size} bytes); re-create it or use --skip-bad")
                except DataError as exc:
                    if not skip_bad:
                        raise
                    self.skipped.append(str(exc))
                    break  # framing is lost: nothing after this point can be trusted
                self.offsets.append((pos + 12, length))
                pos += 12 + length + 4
                fh.seek(pos)
                k += 1

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, i: int) -> bytes:
        off, length = self.offsets[i]
        with open(self.path, "rb") as fh:
            fh.seek(off)
            data = fh.read(length + 4)
        if len(data) < length + 4:
            raise DataError(f"{self.path}, record {i}: truncated (file changed since it was opened)")
        if self.verify:
            (crc,) = struct.unpack_from("<I", data, length)
            if crc != masked_crc32c(data[:length]):
                raise DataError(f"{self.path}, record {i} (byte {off - 12}): data CRC mismatch; "
                                "the record is corrupt (re-create the file or use --skip-bad)")
        return data[:length]

    def __iter__(self) -> Iterator[bytes]:
        for i in range(len(self)):
            yield self.read(i)


IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
FORMAT_KEY = "image/format"


def write_tfrecord_images(path: str | os.PathLike, items: Iterable[tuple[int, bytes]], fmt: str = "png") -> int:
    """Write ``(label, encoded image)`` items as Examples; returns the count."""
    return write_tfrecord(
        path,
        (encode_example({IMAGE_KEY: data, LABEL_KEY: int(label), FORMAT_KEY: fmt}) for label, data in items),
    )


def read_tfrecord_images(
    path: str | os.PathLike, skip_bad: bool = False
) -> tuple[TFRecordReader, list[int], np.ndarray, list[str]]:
    """Open a TFRecord of image Examples: (reader, record indices, labels, skipped messages)."""
    reader = TFRecordReader(path, skip_bad=skip_bad)
    skipped = list(reader.skipped)
    limit = label_limit(len(reader))
    keys: list[int] = []
    labels: list[int] = []
    for i in range(len(reader)):
        where = f"{reader.path}, record {i}"
        try:
            ex = decode_example(reader.read(i), where=where)
            if not ex.get(IMAGE_KEY):
                raise DataError(f"{where}: no {IMAGE_KEY!r} feature; found {sorted(ex)}")
            labels.append(example_label(ex, where, limit))
            keys.append(i)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
    return reader, keys, np.asarray(labels, np.int64), skipped


def example_label(ex: Mapping[str, list], where: str, limit: int) -> int:
    """The class label of an image Example (``image/class/label``, or ``label``).

    :raises DataError: no label, or one that is not a whole number in ``0 .. limit - 1``
        (bytes, NaN, inf and 1.7 included).
    """
    values = ex.get(LABEL_KEY) or ex.get("label")
    if not values:
        raise DataError(f"{where}: no {LABEL_KEY!r} (or 'label') feature; found {sorted(ex)[:10]} — "
                        "a training record needs an integer class label")
    return class_label(values[0], where, limit)


def tfrecord_image(reader: TFRecordReader, i: int) -> bytes:
    """The encoded image bytes of record ``i``."""
    ex = decode_example(reader.read(i), where=f"{reader.path}, record {i}")
    vals = ex.get(IMAGE_KEY)
    if not vals:
        raise DataError(f"{reader.path}, record {i}: no {IMAGE_KEY!r} feature")
    return vals[0]
