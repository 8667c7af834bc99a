"""``bin=DIR``: a folder of insightface ``.bin`` files is a verification suite; ``bin=FILE`` one set."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from harness.formats.images import encode_image
from harness.formats.insightface_bin import write_bin
from harness.types import VerificationData, VerificationSuite


def _bin(path, n_pairs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    imgs = [encode_image(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8), ".png") for _ in range(2 * n_pairs)]
    write_bin(path, imgs, [i % 2 == 0 for i in range(n_pairs)])
    return imgs


def test_folder_is_a_suite_of_named_sets(fresh_registry, tmp_path):
    _bin(tmp_path / "lfw.bin", 10)
    _bin(tmp_path / "CFP_FP.bin", 20, seed=1)
    (tmp_path / "notes.txt").write_text("not a set")
    (tmp_path / "sub").mkdir()
    _bin(tmp_path / "sub" / "agedb_30.bin", 10)  # only the folder itself is listed
    suite = fresh_registry.build("dataset", "bin", path=str(tmp_path))
    assert isinstance(suite, VerificationSuite)
    members = suite.suite_members()
    assert members == [("cfp_fp", str(tmp_path / "CFP_FP.bin")), ("lfw", str(tmp_path / "lfw.bin"))]
    # each member, opened by the same dataset, is one set of its own size
    sizes = [len(fresh_registry.build("dataset", "bin", path=p).verification()) for _, p in members]
    assert sizes == [20, 10]


def test_one_file_is_one_set_not_a_suite(fresh_registry, tmp_path):
    imgs = _bin(tmp_path / "lfw.bin", 10)
    ds = fresh_registry.build("dataset", "bin", path=str(tmp_path / "lfw.bin"))
    assert not isinstance(ds, VerificationSuite) and isinstance(ds, VerificationData)
    ps = ds.verification()
    assert ps.pairs.tolist() == [[2 * i, 2 * i + 1] for i in range(10)]
    assert ps.issame.tolist() == [i % 2 == 0 for i in range(10)]
    assert ps.images.aligned == "arcface_112"
    assert len(ps.images.keys) == len(imgs)


@pytest.mark.parametrize("case, make, fragment", [
    ("empty folder", lambda d: None, "holds no .bin file"),
    ("only other files", lambda d: (d / "lfw.txt").write_text("x"), "holds no .bin file"),
    ("names differing in case", lambda d: (_bin(d / "lfw.bin", 10), _bin(d / "LFW.bin", 10)), "name the same set"),
])
def test_bad_folders_fail_in_one_line(fresh_registry, tmp_path, case, make, fragment):
    make(tmp_path)
    suite = fresh_registry.build("dataset", "bin", path=str(tmp_path))
    with pytest.raises(DataError, match=fragment) as exc:
        suite.suite_members()
    assert "\n" not in str(exc.value)


def test_a_suite_asked_for_one_pair_set_says_how(fresh_registry, tmp_path):
    _bin(tmp_path / "lfw.bin", 10)
    _bin(tmp_path / "agedb_30.bin", 10)
    suite = fresh_registry.build("dataset", "bin", path=str(tmp_path))
    with pytest.raises(DataError, match=r"agedb_30, lfw.*--eval bin=DIR.*bin=DIR/lfw.bin"):
        suite.verification()


def test_missing_path_is_a_data_error(fresh_registry, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        fresh_registry.build("dataset", "bin", path=str(tmp_path / "nowhere"))
