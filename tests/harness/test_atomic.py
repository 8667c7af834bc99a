"""Writers never leave a half-written output."""

from __future__ import annotations

import pytest

from harness.atomic import atomic_dir, atomic_output, atomic_paths
from harness.formats.insightface_bin import write_bin
from harness.formats.tfrecord import write_tfrecord


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as fh:
            fh.write(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_failed_generator_keeps_old_file(tmp_path):
    target = tmp_path / "t.tfrecord"
    write_tfrecord(target, [b"old"])
    before = target.read_bytes()

    def records():
        yield b"new"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_tfrecord(target, records())
    assert target.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_paths_and_dirs(tmp_path):
    with pytest.raises(ValueError):
        with atomic_paths(tmp_path / "a", tmp_path / "b") as (ta, tb):
            ta.write_text("a")
            raise ValueError
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "d") as d:
        (d / "x").write_text("1")
    assert (tmp_path / "d" / "x").read_text() == "1"
    with pytest.raises(FileExistsError):
        with atomic_dir(tmp_path / "d"):
            pass
    with atomic_dir(tmp_path / "d", overwrite=True) as d:
        (d / "y").write_text("2")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_bin_mode_is_not_private(tmp_path):
    p = write_bin(tmp_path / "x.bin", [b"a", b"b"], [True])
    assert p.stat().st_mode & 0o044  # group/other readable under the usual umask
