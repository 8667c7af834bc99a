"""Fuzz every data-file parser: 10,000 inputs each, nothing but the project's errors, no hangs.

Four hypothesis runs of 10,000 examples; each example goes to every parser of
its kind, so each parser sees 10,000 inputs:

* text  -> ``pairs.txt``, ``.idx``, WIDER ``labelv2``, FDDB ellipse lists;
* bytes -> ``.rec`` record headers (``unpack``), ``tf.train.Example`` protos
  (and their labels), insightface ``.bin`` pickles, image header sniffing;
* ``.rec`` files (with and without a fuzzed ``.idx``) and TFRecord files.

Inputs are small and mixed from random bytes or text, mutations of a valid
file (overwritten bytes, a cut) and structured inputs aimed at the fields a
parser trusts (headers, labels, non-ASCII digits, NaN, inf, 5,000-digit
numbers).  ``derandomize=True`` gives every CI run the same inputs, and each
example runs under a hard time limit, so a parser that loops fails here
instead of hanging the job.
"""

from __future__ import annotations

import io
import pickle
import struct
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.formats import recordio as rio
from harness.formats import tfrecord as tfr
from harness.formats.detection import parse_fddb_ellipses, parse_labelv2
from harness.formats.images import image_size
from harness.formats.insightface_bin import loads_bin
from harness.formats.pairs import parse_pairs_text
from tests.harness.formats._bounded import within

FUZZ = settings(
    max_examples=10_000,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
LIMIT_S = 10.0  # per example: far above any parse of these tiny inputs, far below a CI timeout


def _project_errors_only(fn, *args):
    """``fn(*args)``, or None when it raised a HarnessError; any other exception fails the test."""
    try:
        return fn(*args)
    except HarnessError:
        return None


def _write(path, data: bytes) -> None:
    """Replace ``path``: unlinking first avoids ext4's flush on truncating a file with data
    (auto_da_alloc), which made each rewrite cost milliseconds."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def _apply(seed: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    out = bytearray(seed)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[:cut])


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a few bytes overwritten and possibly cut short."""
    edit = st.tuples(st.integers(0, len(seed) - 1), st.integers(0, 255))
    return st.builds(_apply, st.just(seed), st.lists(edit, max_size=6), st.integers(0, len(seed)))


# ---------------------------------------------------------------- text files
TOKENS = st.sampled_from([
    "0", "1", "2", "3", "10", "300", "-1", "+1", "1.5", "1e3", "1e300", "nan", "inf", "\u00b2", "\u0663",
    "\uff11", "9" * 30, "9" * 5000, "1_0", " ", "", "A", "B_C", "#", "img.jpg", "\x85", "\u2028",
])
LINES = st.builds(str.join, st.sampled_from(["\t", " "]), st.lists(TOKENS, max_size=6))
# raw text: bytes read as latin-1 reach every code point below 256 ('²', NEL, NUL) cheaply
RAW_TEXT = st.binary(max_size=60).map(lambda b: b.decode("latin-1"))
TEXT_FILES = st.one_of(st.lists(LINES, max_size=8).map("\n".join), RAW_TEXT)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=TEXT_FILES, skip_bad=st.booleans())
def test_text_parsers(scratch, text, skip_bad):
    path = scratch / "labels.txt"
    _write(path, text.encode("utf-8", "surrogatepass"))
    with within(LIMIT_S):
        pf = _project_errors_only(parse_pairs_text, text, "fuzz.txt", skip_bad)
        index = _project_errors_only(rio.parse_idx, text, "fuzz.idx")
        boxes = [e.boxes for parse in (parse_labelv2, parse_fddb_ellipses)
                 for e in _project_errors_only(parse, path) or []]
    assert pf is None or all(p.n1 >= 1 and p.n2 >= 1 for p in pf.pairs)
    assert index is None or all(k >= 0 and off >= 0 and off % 4 == 0 for k, off in index.items())
    assert all(np.isfinite(b).all() for b in boxes)


# --------------------------------------------------------- records and blobs
FLOATS = st.one_of(st.floats(width=32), st.sampled_from([0.0, 1.0, 2.0, 3.0, 1e8, 1e12, -1.0, 2.5]))


def _frame(record: bytes) -> bytes:
    buf = io.BytesIO()
    rio.RecordIOWriter(buf).write(record)
    return buf.getvalue()


def _ir_record(flag: int, labels: list[float], tail: bytes) -> bytes:
    """An IRHeader with ``flag`` followed by ``labels`` as float32 and ``tail``."""
    return struct.pack("<IfQQ", flag, 0.0, 0, 0) + np.asarray(labels, "<f4").tobytes() + tail


def _image_record(label: float, payload: bytes) -> bytes:
    return rio.pack(rio.IRHeader(0, label, 1, 0), payload)


IR_RECORDS = st.one_of(st.builds(_ir_record, st.integers(0, 4), st.lists(FLOATS, max_size=3), st.binary(max_size=8)),
                       st.builds(_image_record, FLOATS, st.binary(max_size=6)))
EXAMPLE_VALUES = st.one_of(
    st.binary(max_size=6), st.integers(-(2**63), 2**63 - 1), st.floats(width=32),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3), st.lists(st.floats(width=32), min_size=1, max_size=3),
)
EXAMPLES = st.dictionaries(st.sampled_from([tfr.IMAGE_KEY, tfr.LABEL_KEY, "label", "x"]), EXAMPLE_VALUES,
                           max_size=3).map(tfr.encode_example)
VALID_EXAMPLE = tfr.encode_example({tfr.IMAGE_KEY: b"img", tfr.LABEL_KEY: 3, tfr.FORMAT_KEY: "png"})
BIN_OBJECTS = st.recursive(
    st.one_of(st.binary(max_size=4), st.booleans(), st.integers(-3, 3), st.none(), st.text(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple)),
    max_leaves=6,
)
VALID_BINS = [pickle.dumps(([b"a", b"b"], [True]), protocol=p) for p in range(5)]
IMAGE_MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"\xff\xd8\xff\xc0", b"P5", b"P6", b"P2", b"P3"]
PNM_BODY = st.lists(st.sampled_from([b"\n", b" ", b"#c\n", b"92", b"112", b"255", b"9" * 200, b"-1", b"1_0",
                                     b"\xc2\xb2"]), max_size=8).map(b"".join)
BLOBS = st.one_of(
    st.binary(max_size=80),
    IR_RECORDS,
    EXAMPLES,
    mutated(VALID_EXAMPLE),
    st.sampled_from(VALID_BINS).flatmap(mutated),
    st.builds(pickle.dumps, BIN_OBJECTS, st.integers(0, 5)),
    st.builds(lambda m, body: m + body, st.sampled_from(IMAGE_MAGICS), st.one_of(st.binary(max_size=60), PNM_BODY)),
)


@FUZZ
@given(blob=BLOBS)
def test_blob_parsers(blob):
    with within(LIMIT_S):
        _project_errors_only(rio.unpack, blob, "fuzz")
        ex = _project_errors_only(tfr.decode_example, blob, "fuzz")
        label = _project_errors_only(tfr.example_label, ex, "fuzz", 1 << 16) if ex is not None else None
        pairs = _project_errors_only(loads_bin, blob, "fuzz.bin")
        size = image_size(blob)  # documented: (width, height) or None, never an exception
    assert label is None or 0 <= label < 1 << 16
    assert pairs is None or (len(pairs[0]) == 2 * len(pairs[1]) and all(isinstance(b, bytes) for b in pairs[0]))
    assert size is None or (len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size))


# ---------------------------------------------------------------- .rec files
#: insightface's layout in memory: header (images 1..3, identities 4..5), three images, two ranges
REC_SEED = b"".join(_frame(rio.pack(h, payload)) for h, payload in [
    (rio.IRHeader(2, (4.0, 6.0), 0), b""), (rio.IRHeader(0, 0.0, 1), b"a" * 5), (rio.IRHeader(0, 0.0, 2), b"b"),
    (rio.IRHeader(0, 1.0, 3), b"c" * 9), (rio.IRHeader(2, (1.0, 3.0), 4), b""), (rio.IRHeader(2, (3.0, 4.0), 5), b""),
])
#: .idx files whose keys and offsets may point anywhere in (or past) a small .rec; the
#: line syntax itself is fuzzed by test_text_parsers
IDX_FILES = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 48)), max_size=6).map(
    lambda rows: "".join(f"{k}\t{4 * off}\n" for k, off in rows))
REC_FILES = st.one_of(st.binary(max_size=120), mutated(REC_SEED),
                      st.lists(IR_RECORDS.map(_frame), min_size=1, max_size=4).map(b"".join))


def test_rec_seed_is_read(scratch):
    _write(scratch / "ok.rec", REC_SEED)
    rec = rio.read_insightface_rec(scratch / "ok.rec")
    assert rec.labels.tolist() == [0, 0, 1] and rec.ranges == [(1, 3), (3, 4)]
    rec.reader.close()


def _read_rec(path, skip_bad):
    rec = rio.read_insightface_rec(path, skip_bad=skip_bad)
    try:
        assert len(rec.keys) == len(rec.labels) and (rec.labels >= 0).all()
        for k in rec.keys:
            rio.unpack(rec.reader.read_idx(k))
    finally:
        rec.reader.close()


@FUZZ
@given(raw=REC_FILES, skip_bad=st.booleans(), idx=st.one_of(st.none(), IDX_FILES))
def test_rec_files(scratch, raw, skip_bad, idx):
    path, idx_path = scratch / "f.rec", scratch / "f.idx"
    _write(path, raw)
    if idx is None:
        idx_path.unlink(missing_ok=True)
    else:
        _write(idx_path, idx.encode())
    with within(LIMIT_S):
        _project_errors_only(_read_rec, path, skip_bad)


# ----------------------------------------------------------- TFRecord files
def _tf_file(records: list[bytes]) -> bytes:
    return b"".join(tfr._frame(r) for r in records)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=80), mutated(_tf_file([VALID_EXAMPLE, VALID_EXAMPLE])),
                     st.lists(st.one_of(EXAMPLES, st.binary(max_size=20)), max_size=3).map(_tf_file)),
       skip_bad=st.booleans())
def test_tfrecord_files(scratch, raw, skip_bad):
    path = scratch / "f.tfrecord"
    _write(path, raw)

    def read():
        reader, keys, labels, _skipped = tfr.read_tfrecord_images(path, skip_bad=skip_bad)
        assert len(keys) == len(labels)
        for i in keys:
            tfr.tfrecord_image(reader, i)

    with within(LIMIT_S):
        _project_errors_only(read)
