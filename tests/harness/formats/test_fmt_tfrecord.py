"""TFRecord: CRC-32C against RFC 3720 B.4, Example encoding, framing, bad input."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import DataError
from harness.formats import tfrecord as tfr

# RFC 3720 (iSCSI), appendix B.4: CRC-32C examples, stored little-endian.
RFC3720 = [
    (bytes(32), bytes.fromhex("aa36918a")),
    (b"\xff" * 32, bytes.fromhex("43aba862")),
    (bytes(range(32)), bytes.fromhex("4e79dd46")),
    (bytes(range(31, -1, -1)), bytes.fromhex("5cdb3f11")),
    (
        bytes.fromhex(
            "01c00000000000000000000000000000"
            "14000000000004000000001400000018"
            "28000000000000000200000000000000"
        ),
        bytes.fromhex("563a96d9"),
    ),
]


@pytest.mark.parametrize("data,expected", RFC3720)
def test_crc32c_rfc3720_vectors(data, expected):
    assert struct.pack("<I", tfr.crc32c(data)) == expected


def test_crc32c_check_value():
    assert tfr.crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value


def test_crc32c_incremental():
    data = bytes(range(256)) * 3
    assert tfr.crc32c(data[100:], tfr.crc32c(data[:100])) == tfr.crc32c(data)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1 << 18, (1 << 18) + 9000))
def test_crc32c_vectorised_path_equals_scalar(seed, n):
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    scalar = tfr._update(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    assert tfr.crc32c(data) == scalar


def test_masked_crc_formula():
    c = tfr.crc32c(b"abc")
    assert tfr.masked_crc32c(b"abc") == (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_feature_values = st.one_of(
    st.lists(st.binary(max_size=40), max_size=4),
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=4),
    st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), _feature_values, max_size=5))
def test_example_round_trip(features):
    decoded = tfr.decode_example(tfr.encode_example(features))
    for key, values in features.items():
        got = decoded[key]
        if values and isinstance(values[0], float):
            assert got == pytest.approx([float(np.float32(v)) for v in values])
        else:
            assert got == list(values)


def test_example_wire_bytes_are_protobuf():
    # Example{features{feature{key:"a" value{int64_list{value:[1]}}}}} built by hand from the .proto
    ex = tfr.encode_example({"a": 1})
    int64_list = b"\x0a\x01\x01"  # field 1, packed varints [1]
    feature = b"\x1a" + bytes([len(int64_list)]) + int64_list
    entry = b"\x0a\x01a" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    assert ex == b"\x0a" + bytes([len(features)]) + features


def test_unpacked_int64_is_read():
    # an older writer may emit int64 values unpacked (wire type 0)
    int64_list = b"\x08\x05\x08\x07"
    feature = b"\x1a" + bytes([len(int64_list)]) + int64_list
    entry = b"\x0a\x01k" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    assert tfr.decode_example(b"\x0a" + bytes([len(features)]) + features) == {"k": [5, 7]}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decode_example_fuzz_raises_only_dataerror(data):
    try:
        tfr.decode_example(data, where="fuzz")
    except DataError as exc:
        assert "fuzz" in str(exc)


def _write(tmp_path, n=5):
    path = tmp_path / "x.tfrecord"
    items = [(i % 3, bytes([i]) * (10 + i)) for i in range(n)]
    assert tfr.write_tfrecord_images(path, items) == n
    return path, items


def test_framing_layout_and_round_trip(tmp_path):
    path, items = _write(tmp_path)
    raw = path.read_bytes()
    (length,) = struct.unpack_from("<Q", raw)
    assert struct.unpack_from("<I", raw, 8)[0] == tfr.masked_crc32c(raw[:8])
    assert struct.unpack_from("<I", raw, 12 + length)[0] == tfr.masked_crc32c(raw[12:12 + length])
    reader, keys, labels, skipped = tfr.read_tfrecord_images(path)
    assert keys == list(range(5)) and labels.tolist() == [lab for lab, _ in items] and not skipped
    assert [tfr.tfrecord_image(reader, i) for i in keys] == [b for _, b in items]


def test_truncated_file_names_record(tmp_path):
    path, _ = _write(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-7])
    with pytest.raises(DataError, match=r"x\.tfrecord, record 4 .*truncated"):
        tfr.TFRecordReader(path)
    reader = tfr.TFRecordReader(path, skip_bad=True)
    assert len(reader) == 4 and len(reader.skipped) == 1


def test_corrupt_data_crc(tmp_path):
    path, _ = _write(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[14] ^= 0xFF  # inside record 0's data
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="record 0 .*data CRC mismatch"):
        tfr.read_tfrecord_images(path)
    _reader, keys, _labels, skipped = tfr.read_tfrecord_images(path, skip_bad=True)
    assert keys == [1, 2, 3, 4] and len(skipped) == 1


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_reader_fuzz(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "f.tfrecord"
    path.write_bytes(data)
    try:
        reader = tfr.TFRecordReader(path)
        for i in range(len(reader)):
            reader.read(i)
    except DataError:
        pass


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                    reason="tensorflow is not installed (optional: pip install 'facebench[tf]')")
def test_tensorflow_reads_our_file(tmp_path):  # pragma: no cover - needs TensorFlow
    import tensorflow as tf

    path, items = _write(tmp_path)
    spec = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
            "image/class/label": tf.io.FixedLenFeature([], tf.int64)}
    got = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(str(path))]
    assert [(int(g["image/class/label"]), bytes(g["image/encoded"].numpy())) for g in got] == items


@pytest.mark.parametrize("label, match", [
    (b"5", "label b'5' is a bytes; expected an integer class index"),
    (float("nan"), "label nan is not a whole number"),
    (float("inf"), "label inf is not a whole number"),
    (1.7, r"label 1\.7\d* is not a whole number"),
    (-3, r"label -3 is outside 0\.\.65535"),
    (10**12, r"label 1000000000000 is outside 0\.\.65535"),
])
def test_bad_labels_are_data_errors(tmp_path, label, match):
    """Before: bytes / NaN / inf raised ValueError / OverflowError and 1.7 became 1."""
    path = tmp_path / "l.tfrecord"
    good = tfr.encode_example({tfr.IMAGE_KEY: b"img", tfr.LABEL_KEY: 2})
    bad = tfr.encode_example({tfr.IMAGE_KEY: b"img", tfr.LABEL_KEY: label})
    tfr.write_tfrecord(path, [good, bad])
    with pytest.raises(DataError, match=r"l\.tfrecord, record 1: " + match):
        tfr.read_tfrecord_images(path)
    _reader, keys, labels, skipped = tfr.read_tfrecord_images(path, skip_bad=True)
    assert keys == [0] and labels.tolist() == [2] and len(skipped) == 1


def test_integral_float_label_is_accepted_and_missing_label_refused(tmp_path):
    path = tmp_path / "f.tfrecord"
    tfr.write_tfrecord(path, [tfr.encode_example({tfr.IMAGE_KEY: b"i", tfr.LABEL_KEY: 3.0}),
                              tfr.encode_example({tfr.IMAGE_KEY: b"i", "label": 4})])
    assert tfr.read_tfrecord_images(path)[2].tolist() == [3, 4]
    tfr.write_tfrecord(path, [tfr.encode_example({tfr.IMAGE_KEY: b"i"})])
    with pytest.raises(DataError, match="no 'image/class/label'"):
        tfr.read_tfrecord_images(path)
