"""LFW pairs.txt: the real View 2 file, generation, malformed input, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import DataError
from harness.formats.folders import resolve_image
from harness.formats.pairs import generate_pairs, parse_pairs, parse_pairs_text, write_pairs
from tests.conftest import need_data


def test_real_lfw_view2():
    pf = parse_pairs(need_data("lfw_home/pairs.txt"))
    assert (pf.folds, pf.per_fold, len(pf.pairs)) == (10, 300, 6000)
    assert pf.protocol == "LFW View 2 (6,000 pairs, 10 folds)"
    for k in range(10):
        fold = pf.pairs[600 * k:600 * (k + 1)]
        assert {p.fold for p in fold} == {k}
        assert all(p.issame for p in fold[:300]) and not any(p.issame for p in fold[300:])
    first = pf.pairs[0]
    assert (first.name1, first.n1, first.n2, first.line) == ("Abel_Pacheco", 1, 4, 2)
    img = resolve_image(need_data("lfw_home/lfw_funneled"), first.name1, first.n2)
    assert img.name == "Abel_Pacheco_0004.jpg"


def test_view1_single_number_header():
    text = "2\nA\t1\t2\nB\t1\t3\nA\t1\tB\t2\nC\t4\tA\t2\n"
    pf = parse_pairs_text(text)
    assert (pf.folds, pf.per_fold, len(pf.pairs)) == (1, 2, 4)


@pytest.mark.parametrize("text,match", [
    ("", "empty pairs file"),
    ("ten\t300\n", "line 1: bad header"),
    ("1\t1\nA\t1\nA\t1\tB\t2\n", "line 2: 2 fields"),
    ("1\t1\nA\t0\t2\nA\t1\tB\t2\n", "line 2: image numbers must be positive"),
    ("1\t1\nA\tx\t2\nA\t1\tB\t2\n", "line 2: image numbers"),
    ("1\t2\nA\t1\t2\nA\t1\tB\t2\n", "2 pair lines but the header '1 2' promises 4"),
])
def test_malformed(text, match):
    with pytest.raises(DataError, match=match) as info:
        parse_pairs_text(text, where="p.txt")
    assert "p.txt" in str(info.value)


@pytest.mark.parametrize("text, match", [
    ("1\t1\ns1\t\u00b2\t3\nA\t1\tB\t2\n", "line 2: image numbers must be positive"),  # '²'.isdigit()
    ("1\t1\ns1\t\u0663\t3\nA\t1\tB\t2\n", "line 2: image numbers must be positive"),  # Arabic-Indic 3
    ("1\t1\nA\t1\t2\nA\t1\tB\t" + "9" * 5000 + "\n", "line 3: image numbers must be positive"),
    ("1\t1\nA\t1\t2\nA\t1\tB\t1000000001\n", "line 3: image numbers must be positive"),
    ("1\t" + "9" * 5000 + "\nA\t1\t2\n", "line 1: bad header"),
    ("\u00b2\t1\nA\t1\t2\n", "line 1: bad header"),
    ("+1\t1\nA\t1\t2\n", "line 1: bad header"),
])
def test_non_ascii_and_huge_numbers_are_data_errors(text, match):
    """Before: '²' passed str.isdigit and 5,000 digits passed it too; int() then raised ValueError."""
    with pytest.raises(DataError, match=match) as info:
        parse_pairs_text(text, where="p.txt")
    assert str(info.value).startswith("p.txt, line ")
    assert len(str(info.value)) < 600  # the echoed line is capped


def test_skip_bad_keeps_fold_positions():
    text = "2\t1\nA\t1\t2\nbroken\nC\t1\t3\nC\t1\tA\t2\n"
    pf = parse_pairs_text(text, skip_bad=True)
    assert len(pf.skipped) == 1 and "line 3" in pf.skipped[0]
    assert [p.fold for p in pf.pairs] == [0, 1, 1]


def test_generate_write_parse_round_trip(tmp_path):
    ids = {f"s{i}": range(1, 11) for i in range(1, 41)}  # the AT&T shape
    folds, warnings = generate_pairs(ids, folds=10, per_fold=30, seed=3)
    assert not warnings
    path = write_pairs(tmp_path / "pairs.txt", folds)
    pf = parse_pairs(path)
    assert (pf.folds, pf.per_fold, len(pf.pairs)) == (10, 30, 600)
    names_per_fold = [{n for p in pf.pairs if p.fold == k for n in (p.name1, p.name2)} for k in range(10)]
    for a in range(10):  # identities do not repeat across folds
        for b in range(a + 1, 10):
            assert not names_per_fold[a] & names_per_fold[b]
    keys = {tuple(sorted([(p.name1, p.n1), (p.name2, p.n2)])) for p in pf.pairs}
    assert len(keys) == 600  # no repeated pair
    assert all(p.n1 != p.n2 for p in pf.pairs if p.issame)
    assert generate_pairs(ids, 10, 30, seed=3)[0] == folds  # deterministic


def test_generate_falls_back_when_folds_too_small():
    ids = {f"s{i}": range(1, 11) for i in range(31, 41)}  # 10 identities, 10 folds
    folds, warnings = generate_pairs(ids, folds=10, per_fold=30, seed=0)
    assert len(folds) == 10 and all(len(f) == 60 for f in folds)
    assert any("impostor" in w for w in warnings)


def test_generate_impossible_request():
    with pytest.raises(DataError, match="distinct genuine pairs"):
        generate_pairs({"a": [1, 2], "b": [1, 2]}, folds=2, per_fold=5)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z]{1,6}", fullmatch=True),
                       st.sets(st.integers(1, 30), min_size=1, max_size=8), min_size=2, max_size=12),
       st.integers(1, 4), st.integers(1, 6), st.integers(0, 10))
def test_generate_property(ids, folds, per_fold, seed):
    try:
        result, _ = generate_pairs(ids, folds, per_fold, seed)
    except DataError:
        return
    for k, fold in enumerate(result):
        assert [p.issame for p in fold] == [True] * per_fold + [False] * per_fold
        for p in fold:
            assert p.n1 in ids[p.name1] and p.n2 in ids[p.name2]
    text = f"{folds}\t{per_fold}\n" + "".join(p.to_line() + "\n" for f in result for p in f)
    parsed = parse_pairs_text(text)
    assert [(p.name1, p.n1, p.name2, p.n2) for p in parsed.pairs] == \
        [(p.name1, p.n1, p.name2, p.n2) for f in result for p in f]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("12 \t\nAb_x0-"), max_size=80))
def test_parse_fuzz_only_dataerror(text):
    try:
        parse_pairs_text(text, where="fuzz")
    except DataError as exc:
        assert "fuzz" in str(exc)
