"""Write-then-rename, so an interrupted writer never leaves a half-written file.

The one place facebench writes files atomically: results, report pages,
packed datasets, checkpoints and trained weights all go through here.  A
temporary file in the target's folder (same file system, so the rename is
atomic) is fsynced and renamed over the target with :func:`os.replace`; the
folder is fsynced afterwards so the rename survives a crash.

Temporary names carry the writer's host and process id
(``.<name>.<host>-<pid>.<random>.tmp``), so :func:`sweep_stale` can remove
what a killed writer (SIGKILL, power loss) left behind without touching a
write still in progress.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_dir", "atomic_output", "atomic_paths", "fsync_dir", "sweep_stale"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder so a rename inside it is durable (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tag() -> str:
    """``<host>-<pid>`` of this writer, for temporary names."""
    import re
    import socket

    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep_stale(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove the temporaries (``.tmp`` files, ``.part`` / ``.old`` folders) that writers on
    this host left when they died; returns what was removed.

    Only names made here are considered, and only when their process id is no
    longer alive: a write in progress, another host's or a reused pid's entry
    is left alone.
    """
    import re
    import shutil

    host = _tag().rsplit("-", 1)[0]
    pattern = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.(tmp|part|old)$")
    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    for entry in (root.rglob(".*") if recursive else root.glob(".*")):
        m = pattern.match(entry.name)
        if not m or m["host"] != host or _pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry)
    return removed


def _default_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give outputs the usual mode."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_tag()}.", suffix=".tmp", dir=target.parent)
    _default_mode(tmp)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths for several outputs that appear together or not at all.

    Yields one temporary path per target; when the block succeeds each is
    renamed onto its target, otherwise all temporaries are removed.
    """
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for t in targets:
            t.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{t.name}.{_tag()}.", suffix=".tmp", dir=t.parent)
            os.close(fd)
            _default_mode(tmp)
            temps.append(Path(tmp))
        yield temps
        for tmp, t in zip(temps, targets):
            os.replace(tmp, t)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name; it becomes ``path`` only when complete.

    :param overwrite: replace an existing non-empty ``path`` (the old folder is
        removed only after the new one is in place).
    :raises FileExistsError: ``path`` exists, is not empty, and not ``overwrite``.
    """
    import shutil

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} exists and is not empty; choose another output or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_tag()}.", suffix=".part", dir=target.parent))
    _default_mode(tmp, directory=True)
    try:
        yield tmp
        old = None
        if target.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_tag()}.", suffix=".old", dir=target.parent))
            old.rmdir()
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
