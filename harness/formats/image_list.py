"""Image lists: one image per line, optionally with its identity (1:N protocols defined by files).

Format::

    # comment lines and blank lines are skipped
    Aaron_Peirsol/Aaron_Peirsol_0001.jpg<TAB>Aaron_Peirsol
    Aaron_Peirsol/Aaron_Peirsol_0002.jpg Aaron_Peirsol
    George_W_Bush/George_W_Bush_0007.jpg

A line is ``PATH`` or ``PATH IDENTITY``.  With a tab, the text after the last tab is the
identity (so a path may hold spaces); without one, the last space-separated field is, when
there are two or more.  ``PATH`` names an image of the evaluated dataset: its key (the file
path, or a record number for packed formats), or a path relative to the dataset's folder.
A line without an identity takes the dataset's label of that image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError

__all__ = ["ListedImage", "MAX_LIST_BYTES", "read_image_list"]

#: the largest list read (a list of tens of millions of paths fits)
MAX_LIST_BYTES = 2 << 30
MAX_LINE = 4096


@dataclass(frozen=True)
class ListedImage:
    """One line of an image list: the image, its identity (None: the dataset's) and the line number."""

    path: str
    identity: str | None
    line: int


def read_image_list(path: str | os.PathLike) -> list[ListedImage]:
    """The entries of an image list (see the module's text), in file order.

    :raises DataError: one line, naming the file (and line) that is missing, too large, not
        UTF-8, has an over-long line, or lists no image.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_LIST_BYTES:
            raise DataError(f"{p}: {size} bytes; an image list may hold at most {MAX_LIST_BYTES} bytes")
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise DataError(f"{p}: cannot read the image list ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start}); expected one image path per line") from None
    out: list[ListedImage] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_LINE:
            raise DataError(f"{p}:{n}: line of {len(line)} characters; expected PATH [IDENTITY] under {MAX_LINE}")
        if "\t" in line:
            head, _, ident = line.rpartition("\t")
        else:
            head, _, ident = line.rpartition(" ")
        head, ident = head.strip(), ident.strip()
        if not head:  # a single field: the path alone
            out.append(ListedImage(ident, None, n))
        else:
            out.append(ListedImage(head, ident, n))
    if not out:
        raise DataError(f"{p}: lists no image; expected PATH [IDENTITY] per line")
    return out
