"""MXNet RecordIO: dmlc framing (incl. split records), IRHeader, insightface layout, bad input."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import DataError
from harness.formats import recordio as rio

MAGIC = struct.pack("<I", 0xCED7230A)


def test_simple_record_bytes():
    buf = io.BytesIO()
    off = rio.RecordIOWriter(buf).write(b"abcde")
    assert off == 0
    # magic, lrecord = (cflag 0 << 29) | 5, data, 3 bytes of padding
    assert buf.getvalue() == MAGIC + struct.pack("<I", 5) + b"abcde" + b"\x00" * 3


def test_magic_inside_data_splits_record_like_dmlc():
    data = b"ABCD" + MAGIC + b"EFGHIJ"
    buf = io.BytesIO()
    rio.RecordIOWriter(buf).write(data)
    expected = (MAGIC + struct.pack("<I", (1 << 29) | 4) + b"ABCD"
                + MAGIC + struct.pack("<I", (3 << 29) | 6) + b"EFGHIJ" + b"\x00\x00")
    assert buf.getvalue() == expected


def _reader_for(tmp_path, records):
    path = tmp_path / "r.rec"
    with open(path, "wb") as fh:
        w = rio.RecordIOWriter(fh)
        offsets = [w.write(r) for r in records]
    return path, offsets


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from([b"a", b"\x00", MAGIC, b"xyz", MAGIC[:2], b"0123"]), max_size=12)
                .map(b"".join), max_size=6))
def test_round_trip_with_embedded_magic(tmp_path_factory, records):
    path, offsets = _reader_for(tmp_path_factory.mktemp("r"), records)
    reader = rio.RecordIOReader(path)
    assert list(reader.scan()) == offsets
    assert list(reader) == records
    reader.close()


def test_irheader_pack_unpack():
    rec = rio.pack(rio.IRHeader(0, 7.0, 12, 0), b"IMG")
    assert rec[:24] == struct.pack("<IfQQ", 0, 7.0, 12, 0)
    h, payload = rio.unpack(rec)
    assert (h.flag, h.label, h.id, payload) == (0, 7.0, 12, b"IMG")
    rec2 = rio.pack(rio.IRHeader(2, (3.0, 9.0), 0, 0))
    assert rec2 == struct.pack("<IfQQ", 2, 0.0, 0, 0) + np.asarray([3, 9], "<f4").tobytes()
    h2, p2 = rio.unpack(rec2)
    assert h2.label == (3.0, 9.0) and p2 == b""


def test_insightface_layout(tmp_path):
    items = [(0, b"a0"), (0, b"a1"), (1, b"b0"), (2, b"c0"), (2, b"c1"), (2, b"c2")]
    summary = rio.write_insightface_rec(tmp_path / "train", items, 3, (112, 112))
    assert summary["images"] == 6
    reader = rio.RecordIOReader(tmp_path / "train.rec")
    assert reader.keys == list(range(10))  # header + 6 images + 3 identities
    h0, _ = rio.unpack(reader.read_idx(0))
    assert h0.flag == 2 and h0.label == (7.0, 10.0)
    ranges = [rio.unpack(reader.read_idx(k))[0].label for k in range(7, 10)]
    assert ranges == [(1.0, 3.0), (3.0, 4.0), (4.0, 7.0)]
    for k, (label, data) in enumerate(items, start=1):
        h, payload = rio.unpack(reader.read_idx(k))
        assert (h.flag, h.label, h.id, payload) == (0, float(label), k, data)
    idx_lines = (tmp_path / "train.idx").read_text().splitlines()
    assert idx_lines[0] == "0\t0" and len(idx_lines) == 10
    assert (tmp_path / "property").read_text().strip() == "3,112,112"
    rec = rio.read_insightface_rec(tmp_path / "train.rec")
    assert rec.keys == [1, 2, 3, 4, 5, 6] and rec.labels.tolist() == [0, 0, 1, 2, 2, 2]
    assert rec.ranges == [(1, 3), (3, 4), (4, 7)]


def test_reads_without_idx(tmp_path):
    rio.write_insightface_rec(tmp_path / "train", [(0, b"x"), (1, b"y")], 2)
    (tmp_path / "train.idx").unlink()
    rec = rio.read_insightface_rec(tmp_path / "train.rec")
    assert rec.labels.tolist() == [0, 1]


def test_unsorted_labels_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match="grouped by label"):
        rio.write_insightface_rec(tmp_path / "train", [(1, b"x"), (0, b"y")], 2)
    assert list(tmp_path.iterdir()) == []


def test_truncated_rec_names_record(tmp_path):
    rio.write_insightface_rec(tmp_path / "train", [(0, b"x" * 50), (1, b"y" * 50)], 2)
    rec_path = tmp_path / "train.rec"
    raw = rec_path.read_bytes()
    offsets = dict(line.split("\t") for line in (tmp_path / "train.idx").read_text().splitlines())
    cut = int(offsets["2"]) + 20  # inside image record 2
    rec_path.write_bytes(raw[:cut])
    (tmp_path / "train.idx").write_text("".join(f"{k}\t{v}\n" for k, v in offsets.items() if int(v) < cut))
    with pytest.raises(DataError, match=r"train\.rec, record 2\b.*truncated"):
        rio.read_insightface_rec(rec_path)
    rec = rio.read_insightface_rec(rec_path, skip_bad=True)
    assert rec.keys == [1] and rec.skipped


def test_bad_magic(tmp_path):
    p = tmp_path / "bad.rec"
    p.write_bytes(b"\x00" * 16)
    with pytest.raises(DataError, match="bad magic"):
        rio.RecordIOReader(p)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=100))
def test_reader_fuzz(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("f") / "f.rec"
    p.write_bytes(MAGIC + data if data[:1] == b"\x01" else data)
    try:
        r = rio.read_insightface_rec(p)
        for k in r.keys:
            rio.unpack(r.reader.read_idx(k))
    except DataError:
        pass
