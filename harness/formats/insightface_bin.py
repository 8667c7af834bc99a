"""insightface verification ``.bin`` files: ``pickle((bins, issame_list))``.

``bins`` is a list of encoded images (JPEG/PNG bytes), two per pair —
pair ``i`` is ``bins[2 i]`` vs ``bins[2 i + 1]`` — and ``issame_list`` a list
of bools, one per pair.  insightface reads them with
``pickle.load(f, encoding="bytes")``: its published files were written under
Python 2, where the images were ``str``.

A ``.bin`` is a pickle from the internet, and unpickling runs code.  So this
module never calls ``pickle.load`` on one: :class:`SafeBinUnpickler` admits
only the containers and scalars the format needs (tuple, list, bytes, str,
bool, int, None) and exactly one global, ``_codecs.encode`` — the form in
which Python 3 writes ``bytes`` under pickle protocols 0–2 — wrapped so it
can only turn a ``str`` into latin-1 bytes.  Any other global (``os.system``,
``builtins.eval``, ``numpy`` reconstructors, ...) is refused before anything
runs.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Sequence

from harness.errors import DataError
from harness.atomic import atomic_output

__all__ = ["SafeBinUnpickler", "UnsafePickleError", "load_bin", "loads_bin", "write_bin"]


class UnsafePickleError(DataError):
    """The pickle asks for a global the .bin format does not need."""


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    """The only global admitted: ``_codecs.encode(str, 'latin1')`` -> bytes."""
    if not isinstance(obj, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(
            f"_codecs.encode called with ({type(obj).__name__}, {encoding!r}); the .bin format "
            "only uses it to store bytes as latin-1 text"
        )
    return obj.encode("latin-1")


def _empty_bytes(*args):
    if args:
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
            return bytes(args[0])
        raise UnsafePickleError("builtins.bytes called with arguments the .bin format never uses")
    return b""


_ALLOWED = {
    ("_codecs", "encode"): _latin1_encode,
    ("codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
}


class SafeBinUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global except the bytes-encoding shim.

    Opcodes that build plain containers (lists, tuples, dicts), bytes, str,
    ints and bools need no global and work as usual; anything that needs
    ``find_class`` (every ``__reduce__`` payload) is checked here first.
    """

    def __init__(self, file, where: str = "<.bin>") -> None:
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module: str, name: str):
        fn = _ALLOWED.get((module, name))
        if fn is None:
            raise UnsafePickleError(
                f"{self.where}: refused to load — the pickle references {module}.{name}, which a "
                "verification .bin never needs (it holds only image bytes and booleans). The file "
                "may be malicious or not an insightface .bin; nothing from it was executed"
            )
        return fn

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.where}: refused persistent id {pid!r} in the pickle")


def loads_bin(data: bytes, where: str = "<.bin>") -> tuple[list[bytes], list[bool]]:
    """Decode the bytes of a ``.bin`` file safely (see the module doc)."""
    try:
        obj = SafeBinUnpickler(io.BytesIO(data), where=where).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            KeyError, AttributeError, OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{where}: not a readable pickle ({type(exc).__name__}: {exc}); the file is "
            "truncated or not an insightface .bin — re-create it with `harness data bin`"
        ) from None
    return _validate(obj, where)


def _validate(obj, where: str) -> tuple[list[bytes], list[bool]]:
    expected = ("expected a pickled (list of image bytes, list of issame bools) with two "
                "images per pair")
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataError(f"{where}: top-level object is {type(obj).__name__}"
                        f"{f' of length {len(obj)}' if isinstance(obj, (tuple, list)) else ''}; {expected}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise DataError(f"{where}: got ({type(bins).__name__}, {type(issame).__name__}); {expected}")
    images: list[bytes] = []
    for i, b in enumerate(bins):
        if isinstance(b, str):  # a Python 2 str read without encoding="bytes"
            try:
                b = b.encode("latin-1")
            except UnicodeEncodeError:
                raise DataError(f"{where}: image {i} is text with characters beyond latin-1, not the "
                                f"bytes of an image; {expected}") from None
        if not isinstance(b, (bytes, bytearray)):
            raise DataError(f"{where}: image {i} is {type(b).__name__}, not bytes; {expected}")
        images.append(bytes(b))
    flags: list[bool] = []
    for i, s in enumerate(issame):
        if isinstance(s, bool) or (isinstance(s, int) and s in (0, 1)):
            flags.append(bool(s))
        else:
            raise DataError(f"{where}: issame[{i}] is {s!r}; {expected}")
    if len(images) != 2 * len(flags):
        raise DataError(f"{where}: {len(images)} images for {len(flags)} pairs; {expected}")
    return images, flags


def load_bin(path: str | os.PathLike) -> tuple[list[bytes], list[bool]]:
    """Read a verification ``.bin`` safely: (encoded images, issame flags)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: .bin file not found") from None
    return loads_bin(data, where=str(p))


def write_bin(path: str | os.PathLike, images: Sequence[bytes], issame: Sequence[bool], protocol: int = 4) -> Path:
    """Write a ``.bin`` atomically in insightface's layout (pickle of two lists)."""
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs; need two per pair")
    obj = ([bytes(b) for b in images], [bool(s) for s in issame])
    with atomic_output(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return Path(path)
