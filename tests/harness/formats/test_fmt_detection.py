"""WIDER labelv2 and FDDB ellipse parsing."""

from __future__ import annotations

import math

import pytest

from harness.errors import DataError
from harness.formats.detection import ellipse_to_box, parse_fddb_ellipses, parse_labelv2
from tests.conftest import need_data


def test_labelv2_real():
    entries = parse_labelv2(need_data("wider/labelv2_val.txt"))
    assert len(entries) == 3226
    assert sum(len(e.boxes) for e in entries) == 39697  # every box line of the file (the .mat has 39,708)
    first = entries[0]
    assert (first.path, first.width, first.height) == ("0--Parade/0_Parade_marchingband_1_465.jpg", 1024, 678)
    assert first.boxes[0].tolist() == [345, 211, 349, 215]


def test_fddb_real():
    folder = need_data("fddb/FDDB-folds")
    entries = [e for k in range(1, 11) for e in parse_fddb_ellipses(folder / f"FDDB-fold-{k:02d}-ellipseList.txt")]
    assert len(entries) == 2845 and sum(len(e.boxes) for e in entries) == 5171
    assert entries[0].path == "2002/08/11/big/img_591"


def test_ellipse_box():
    assert ellipse_to_box(10, 5, 0.0, 100, 50) == pytest.approx((90, 45, 110, 55))
    assert ellipse_to_box(10, 5, math.pi / 2, 100, 50) == pytest.approx((95, 40, 105, 60))


def test_malformed(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("# a.jpg 10 10\n1 2 x 4\n")
    with pytest.raises(DataError, match=r"l\.txt, line 2"):
        parse_labelv2(p)
    q = tmp_path / "e.txt"
    q.write_text("img\n2\n1 1 0 5 5 1\n")
    with pytest.raises(DataError, match=r"e\.txt, line 4: file ends inside 'img'"):
        parse_fddb_ellipses(q)


@pytest.mark.parametrize("text, match", [
    ("# a.jpg \u00b2 10\n1 2 3 4\n", r"line 1: .*expected '# <path> <width> <height>'"),
    ("# a.jpg 10 " + "9" * 5000 + "\n", r"line 1: .*expected '# <path> <width> <height>'"),
    ("# a.jpg 10 10\n1 2 nan 4\n", r"line 2: .*expected numbers"),
    ("# a.jpg 10 10\n1 2 inf 4\n", r"line 2: .*expected numbers"),
])
def test_labelv2_bad_numbers_are_data_errors(tmp_path, text, match):
    p = tmp_path / "l.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"l\.txt, " + match):
        parse_labelv2(p)


@pytest.mark.parametrize("text, match", [
    ("img\n\u00b2\n1 1 0 5 5 1\n", "line 2: expected the face count"),
    ("img\n" + "9" * 5000 + "\n", "line 2: expected the face count"),
    ("img\n1\n1 1 inf 5 5 1\n", "line 3: .*finite numbers"),  # math.cos(inf) raised ValueError
    ("img\n1\n1e300 1 0 5 5 1\n", "line 3: .*finite numbers"),  # squaring it raised OverflowError
])
def test_fddb_bad_numbers_are_data_errors(tmp_path, text, match):
    q = tmp_path / "e.txt"
    q.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=r"e\.txt, " + match):
        parse_fddb_ellipses(q)


def test_binary_files_are_data_errors(tmp_path):
    p = tmp_path / "b.txt"
    p.write_bytes(b"# a.jpg 1 1\n\xff\xfe\n")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        parse_labelv2(p)
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        parse_fddb_ellipses(p)
