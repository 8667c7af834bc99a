"""insightface .bin: round trips across pickle protocols, Python 2 pickles, malicious payloads."""

from __future__ import annotations

import os
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import DataError
from harness.formats.insightface_bin import UnsafePickleError, load_bin, loads_bin, write_bin

IMAGES = [b"\xff\xd8jpeg-1", b"\x89PNG-2", b"", b"\x00\x01\x02\x03"]
ISSAME = [True, False]


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_round_trip_every_protocol(tmp_path, protocol):
    p = tmp_path / "x.bin"
    p.write_bytes(pickle.dumps((IMAGES, ISSAME), protocol=protocol))
    assert load_bin(p) == (IMAGES, ISSAME)


def test_write_bin_is_what_insightface_reads(tmp_path):
    p = write_bin(tmp_path / "x.bin", IMAGES, ISSAME)
    with open(p, "rb") as fh:
        assert pickle.load(fh, encoding="bytes") == (IMAGES, ISSAME)  # insightface's own call


def test_python2_str_pickle():
    # What Python 2 writes for ([str, str], [True]) at protocol 2: SHORT_BINSTRING, NEWTRUE.
    data = (b"\x80\x02(]q\x00(U\x04\xff\xd8abq\x01U\x02xyq\x02e]q\x03\x88at.")
    assert loads_bin(data) == ([b"\xff\xd8ab", b"xy"], [True])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalPayload:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_bin_is_refused_without_executing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.bin"
    p.write_bytes(pickle.dumps(([_Payload(marker), b"x"], [True]), protocol=protocol))
    with pytest.raises(UnsafePickleError, match=r"evil\.bin: refused .*(posix|os)\.system"):
        load_bin(p)
    assert not marker.exists()


def test_eval_and_codecs_abuse_refused():
    with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        loads_bin(pickle.dumps(([_EvalPayload(), b""], [True]), protocol=2))
    # _codecs.encode is admitted only as str -> latin-1 bytes
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(UnsafePickleError, match="latin-1"):
        loads_bin(crafted)


def test_numpy_objects_refused():
    np = pytest.importorskip("numpy")
    data = pickle.dumps(([b"a", b"b"], np.array([True])), protocol=4)
    with pytest.raises(UnsafePickleError, match="numpy"):
        loads_bin(data)


@pytest.mark.parametrize("obj,match", [
    ([b"a"], "top-level"),
    (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
    (([1, 2], [True]), "image 0 is int"),
    (([b"a", b"b"], ["yes"]), r"issame\[0\]"),
])
def test_wrong_structure(obj, match):
    with pytest.raises(DataError, match=match):
        loads_bin(pickle.dumps(obj, protocol=4), where="w.bin")


def test_truncated(tmp_path):
    p = write_bin(tmp_path / "t.bin", IMAGES, ISSAME)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"t\.bin: not a readable pickle"):
        load_bin(p)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_only_dataerror(data):
    try:
        loads_bin(b"\x80\x04" + data, where="fuzz")
    except DataError:
        pass


def test_non_latin1_text_image_is_a_data_error():
    """Found by the fuzz run: a str image beyond latin-1 raised UnicodeEncodeError."""
    from harness.formats.insightface_bin import loads_bin

    with pytest.raises(DataError, match="image 0 is text with characters beyond latin-1"):
        loads_bin(pickle.dumps((["\u0100", "a"], [True])), where="x.bin")
