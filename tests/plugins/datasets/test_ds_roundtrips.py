"""Real round trips: AT&T -> .rec -> images and labels back; .rec <-> .tfrecord;
LFW fold 1 -> .bin -> the same issame / folds as the LFW PairSet."""

from __future__ import annotations

import numpy as np
import pytest

from harness.cli import main
from harness.formats.tfrecord import write_tfrecord_images
from tests.conftest import need_data


@pytest.fixture(scope="module")
def att_rec(tmp_path_factory):
    att = need_data("att_faces")
    out = tmp_path_factory.mktemp("rec")
    assert main(["data", "rec", str(att), "-o", str(out / "train"), "--size", "0", "--encoding", "original",
                 "--no-progress"]) == 0
    assert main(["data", "rec", str(att), "-o", str(out / "png" / "train"), "--size", "0", "--encoding", "png",
                 "--no-progress"]) == 0
    return att, out


def test_att_to_rec_exact_bytes_and_labels(fresh_registry, att_rec):
    att, out = att_rec
    folder = fresh_registry.build("dataset", "imagefolder", path=str(att)).train_set()
    rec = fresh_registry.build("dataset", "rec", path=str(out / "train.rec")).train_set()
    assert len(rec) == len(folder) == 400
    assert np.array_equal(rec.labels, folder.labels)
    from pathlib import Path

    for i in range(len(rec)):
        assert rec.loader.raw(rec.keys[i]) == Path(folder.keys[i]).read_bytes()


def test_att_png_rec_identical_pixels(fresh_registry, att_rec):
    att, out = att_rec
    folder = fresh_registry.build("dataset", "imagefolder", path=str(att)).train_set()
    rec = fresh_registry.build("dataset", "rec", path=str(out / "png")).train_set()
    assert np.array_equal(rec.labels, folder.labels)
    for i in range(0, 400, 7):
        assert np.array_equal(rec.load(i), folder.load(i))


def test_rec_to_tfrecord_and_back(fresh_registry, att_rec, tmp_path):
    _att, out = att_rec
    rec = fresh_registry.build("dataset", "rec", path=str(out / "png")).train_set()
    items = [(int(rec.labels[i]), rec.loader.raw(rec.keys[i])) for i in range(len(rec))]
    write_tfrecord_images(tmp_path / "t.tfrecord", items)
    tf = fresh_registry.build("dataset", "tfrecord", path=str(tmp_path / "t.tfrecord")).train_set()
    assert np.array_equal(tf.labels, rec.labels)
    assert [tf.loader.raw(k) for k in tf.keys] == [b for _, b in items]
    # and back: the CLI's tfrecord of the folder equals the rec record for record
    assert main(["data", "tfrecord", str(_att), "-o", str(tmp_path / "cli.tfrecord"), "--size", "0",
                 "--encoding", "png", "--no-progress"]) == 0
    tf2 = fresh_registry.build("dataset", "tfrecord", path=str(tmp_path / "cli.tfrecord")).train_set()
    assert [tf2.loader.raw(k) for k in tf2.keys] == [b for _, b in items]


def test_lfw_fold1_to_bin_matches_lfw(fresh_registry, tmp_path):
    home = need_data("lfw_home")
    out = tmp_path / "lfw1.bin"
    assert main(["data", "bin", str(home / "lfw_funneled"), str(home / "pairs.txt"), "-o", str(out),
                 "--fold", "1", "--detector", "none", "--crop", "0.5", "--no-progress"]) == 0
    lfw = fresh_registry.build("dataset", "lfw", path=str(home)).verification().subset([0])
    b = fresh_registry.build("dataset", "bin", {"folds": "1"}, path=str(out)).verification()
    assert len(b) == len(lfw) == 600
    assert np.array_equal(b.issame, lfw.issame) and np.array_equal(b.folds, lfw.folds)
    assert b.images.aligned == "arcface_112" and b.images.load(0).shape == (112, 112, 3)


def test_full_bin_folds_follow_kfold(fresh_registry, tmp_path):
    from harness.formats.insightface_bin import write_bin

    write_bin(tmp_path / "lfw.bin", [b"x"] * 12000, [True] * 6000)
    ps = fresh_registry.build("dataset", "bin", path=str(tmp_path / "lfw.bin")).verification()
    assert np.bincount(ps.folds).tolist() == [600] * 10
    assert ps.protocol == "LFW View 2 (6,000 pairs, 10 folds)"
