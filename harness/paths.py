"""Where facebench looks for shared data and weights.

One setting: ``FACEBENCH_DATA``.  When unset it defaults to ``../shared/data``
beside the repository root (or beside the current directory), when that
folder exists.  The folder is read-only: facebench never writes there.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import DataError

__all__ = ["data_root", "data_path", "repo_root", "require_data_root"]


def repo_root() -> Path:
    """The source checkout holding this package (for an editable install)."""
    return Path(__file__).resolve().parent.parent


def data_root() -> Path | None:
    """The shared data folder, or ``None`` when none is configured or found."""
    env = os.environ.get("FACEBENCH_DATA")
    if env:
        return Path(env).expanduser().resolve()
    for base in (repo_root(), Path.cwd()):
        candidate = (base.parent / "shared" / "data").resolve()
        if candidate.is_dir():
            return candidate
    return None


def require_data_root() -> Path:
    root = data_root()
    if root is None or not root.is_dir():
        raise DataError(
            "no shared data folder: set FACEBENCH_DATA to the folder holding lfw_home/, "
            "weights/, att_faces/ … (by default ../shared/data beside the repository)"
            + (f"; {root} does not exist" if root is not None else "")
        )
    return root


def data_path(relative: str) -> Path:
    """``FACEBENCH_DATA/relative``, with a clear error when it is missing."""
    path = require_data_root() / relative
    if not path.exists():
        raise DataError(
            f"{path} is missing: expected {relative!r} under FACEBENCH_DATA={require_data_root()}"
        )
    return path
