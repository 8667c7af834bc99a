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


def test_temporaries_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    """A writer killed with SIGKILL leaves its .tmp; sweep_stale removes it, never a live writer's."""
    import signal
    import subprocess
    import sys

    from harness.atomic import sweep_stale

    target = tmp_path / "results.json"
    code = ("import sys, time; from harness.atomic import atomic_output\n"
            f"with atomic_output({str(target)!r}, 'w') as fh:\n"
            "    fh.write('{\"partial\": '); fh.flush(); print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    (tmp,) = tmp_path.glob(".results.json.*.tmp")
    assert sweep_stale(tmp_path) == [] and tmp.exists()  # the writer is alive: kept
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tmp.exists() and not target.exists()  # what SIGKILL leaves
    assert sweep_stale(tmp_path) == [tmp] and not tmp.exists()
    # names not made by facebench, and another host's, are never touched
    foreign = [tmp_path / ".results.json.abc.tmp", tmp_path / ".x.otherhost-1.abcd.tmp", tmp_path / "keep.tmp"]
    for f in foreign:
        f.write_text("x")
    assert sweep_stale(tmp_path) == [] and all(f.exists() for f in foreign)


def test_run_listing_sweeps_dead_writers_temporaries(tmp_path):
    from harness.atomic import _tag
    from harness.results import RunStore

    store = RunStore(tmp_path)
    run = store.create("x", "abc123")
    host = _tag().rsplit("-", 1)[0]
    dead = run.path / f".results.json.{host}-999999999.abcd1234.tmp"  # no such pid
    part = run.path / "checkpoints" / f".last.pt.{host}-999999999.zz.part"
    part.mkdir(parents=True)
    dead.write_text("{")
    assert [r.run_id for r in store.runs()] == [run.run_id]
    assert not dead.exists() and not part.exists()
