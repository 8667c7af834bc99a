"""MXNet RecordIO: dmlc framing (incl. split records), IRHeader, insightface layout, bad input."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import DataError
from harness.formats import recordio as rio
from tests.harness.formats._bounded import within

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


# ------------------------------------------------------ malformed headers (issue 14, A1)
def _header_only_rec(path, flag, labels):
    """A .rec holding only record 0 (flag, labels): 40 bytes for two labels."""
    body = struct.pack("<IfQQ", flag, 0.0, 0, 0) + np.asarray(labels, "<f4").tobytes()
    buf = io.BytesIO()
    rio.RecordIOWriter(buf).write(body)
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("labels, match", [
    ((1.0, 1e12), r"end of the identity records 999999995904\.0 is not a record number in 0\.\.5"),
    ((1e8, 1e8), "first identity record 100000000.0 is not a record number"),
    ((float("nan"), 3.0), "first identity record nan"),
    ((1.0, float("inf")), "end of the identity records inf"),
    ((2.5, 3.0), "first identity record 2.5"),
    ((4.0, 2.0), "are not a range"),
    ((0.0, 0.0), "are not a range"),
])
@pytest.mark.parametrize("skip_bad", [False, True])
def test_malformed_header_is_a_quick_data_error(tmp_path, labels, match, skip_bad):
    p = _header_only_rec(tmp_path / "train.rec", 2, labels)
    assert p.stat().st_size == 40
    with within(2.0), pytest.raises(DataError, match=match):
        rio.read_insightface_rec(p, skip_bad=skip_bad)


def test_flag_one_header_is_a_data_error(tmp_path):
    p = _header_only_rec(tmp_path / "train.rec", 1, [3.0])
    with within(2.0), pytest.raises(DataError, match="flag=1 gives 1 label value; the header holds two"):
        rio.read_insightface_rec(p)


def _rec_with_labels(tmp_path, labels):
    path = tmp_path / "plain.rec"
    with open(path, "wb") as fh:
        w = rio.RecordIOWriter(fh)
        for i, lab in enumerate(labels):
            w.write(struct.pack("<IfQQ", 0, lab, i, 0) + b"img")
    return path


@pytest.mark.parametrize("label, match", [
    (float("nan"), "label nan is not a whole number"),
    (float("inf"), "label inf is not a whole number"),
    (1.5, "label 1.5 is not a whole number"),
    (-1.0, r"label -1.0 is outside 0\.\.65535"),
    (1e12, r"label 999999995904.0 is outside 0\.\.65535"),
])
def test_bad_image_labels_are_data_errors(tmp_path, label, match):
    p = _rec_with_labels(tmp_path, [0.0, label, 1.0])
    with within(2.0), pytest.raises(DataError, match=r"plain\.rec, record 1: " + match):
        rio.read_insightface_rec(p)
    rec = rio.read_insightface_rec(p, skip_bad=True)
    assert rec.keys == [0, 2] and rec.labels.tolist() == [0, 1] and len(rec.skipped) == 1


def test_identity_range_with_nan_is_a_data_error(tmp_path):
    rio.write_insightface_rec(tmp_path / "train", [(0, b"a"), (1, b"b")], 2)
    reader = rio.RecordIOReader(tmp_path / "train.rec")
    off = reader.index[3]
    reader.close()
    raw = bytearray((tmp_path / "train.rec").read_bytes())
    raw[off + 8 + 24:off + 8 + 28] = np.asarray([np.nan], "<f4").tobytes()
    (tmp_path / "train.rec").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"record 3: range start nan is not a record number"):
        rio.read_insightface_rec(tmp_path / "train.rec")


@pytest.mark.parametrize("line", ["1\t\u00b2", "\u0663\t0", "1\t" + "9" * 5000, "1 2 3", "-1\t0"])
def test_bad_idx_lines_are_data_errors(tmp_path, line):
    rio.write_insightface_rec(tmp_path / "train", [(0, b"a")], 1)
    (tmp_path / "train.idx").write_text("0\t0\n" + line + "\n", encoding="utf-8")
    # non-ASCII was already refused by decoding; the 5,000 digits and the others by the line parser
    pattern = r"train\.idx(, line 2: .* is not|: not a text .idx file; expected) 'key<TAB>offset'"
    with pytest.raises(DataError, match=pattern):
        rio.RecordIOReader(tmp_path / "train.rec")


def test_data_inspect_cli_exits_2_on_a_hanging_header(tmp_path):
    """The whole command, through the ``harness`` entry point, in a bounded subprocess."""
    p = _header_only_rec(tmp_path / "train.rec", 2, (1.0, 1e12))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    proc = subprocess.run([sys.executable, "-m", "harness", "data", "inspect", str(p), "--no-progress"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and "not a record number" in lines[-1]
    assert "Traceback" not in proc.stderr
