"""The lfw dataset: exactly View 2, both layouts, resolution by number, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from harness.errors import DataError
from tests.conftest import need_data


def test_view2(fresh_registry):
    home = need_data("lfw_home")
    ps = fresh_registry.build("dataset", "lfw", path=str(home)).verification()
    assert len(ps) == 6000 and ps.protocol == "LFW View 2 (6,000 pairs, 10 folds)"
    assert np.bincount(ps.folds).tolist() == [600] * 10
    assert ps.issame.sum() == 3000 and ps.images.aligned is None
    assert ps.images.keys[ps.pairs[0, 0]].endswith("Abel_Pacheco/Abel_Pacheco_0001.jpg")
    assert ps.images.keys[ps.pairs[0, 1]].endswith("Abel_Pacheco/Abel_Pacheco_0004.jpg")
    assert len(ps.images) == 7701
    assert ps.images.load(ps.pairs[0, 0]).shape == (250, 250, 3)
    # same identity label exactly for genuine pairs
    lab = ps.images.labels
    assert np.array_equal(lab[ps.pairs[:, 0]] == lab[ps.pairs[:, 1]], ps.issame)


def test_data_home_layout_and_default(fresh_registry):
    root = need_data("lfw_home").parent
    a = fresh_registry.build("dataset", "lfw", path=str(root)).verification()
    b = fresh_registry.build("dataset", "lfw").verification()  # FACEBENCH_DATA/lfw_home
    assert a.images.keys == b.images.keys and np.array_equal(a.pairs, b.pairs)


def _numbered_layout(tmp_path):
    att = need_data("att_faces")
    for s in ("s1", "s2"):
        shutil.copytree(att / s, tmp_path / s)
    (tmp_path / "pairs.txt").write_text("1\t1\ns1\t1\t10\ns1\t2\ts2\t3\n")
    return tmp_path


def test_numbered_files_resolve(fresh_registry, tmp_path):
    root = _numbered_layout(tmp_path)
    ps = fresh_registry.build("dataset", "lfw", path=str(root)).verification()
    assert [k.rsplit("/", 2)[-2:] for k in ps.images.keys] == [["s1", "1.pgm"], ["s1", "10.pgm"],
                                                                ["s1", "2.pgm"], ["s2", "3.pgm"]]
    assert ps.protocol == "pairs file (2 pairs, 1 fold)"


def test_missing_image_and_skip_bad(fresh_registry, tmp_path):
    root = _numbered_layout(tmp_path)
    (root / "pairs.txt").write_text("1\t2\ns1\t1\t10\ns1\t1\t11\ns1\t2\ts2\t3\ns1\t2\ts2\t4\n")
    with pytest.raises(DataError, match=r"pairs\.txt, line 3: image 's1' #11 not found"):
        fresh_registry.build("dataset", "lfw", path=str(root)).verification()
    ps = fresh_registry.build("dataset", "lfw", {"skip_bad": "true"}, path=str(root)).verification()
    assert len(ps) == 3 and "1 skipped" in ps.protocol


def test_mesh_training_faces_from_an_lfw_home_or_a_folder(lfw_home, fresh_registry, tmp_path):
    """`--train mesh=PATH`: an LFW home gives its identity folders; any identity folder tree works too."""
    home = fresh_registry.build("dataset", "mesh", {}, path=str(lfw_home)).train_set()
    assert home.info["source"] == str(lfw_home / "lfw_funneled") and home.info["format"].startswith("mesh")
    assert len(home) == 7701 and "Aaron_Peirsol" in home.identities
    assert home.keys[0].startswith(str(lfw_home / "lfw_funneled"))
    parent = fresh_registry.build("dataset", "mesh", {}, path=str(lfw_home.parent)).train_set()
    assert parent.keys == home.keys  # a folder holding lfw_home
    folder = fresh_registry.build("dataset", "mesh", {}, path=str(lfw_home / "lfw_funneled")).train_set()
    assert folder.keys == home.keys
    img = folder.load(0)
    assert img.dtype == np.uint8 and img.shape == (250, 250, 3)
