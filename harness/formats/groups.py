"""Demographic group files: ``--groups FILE.csv``.

A UTF-8 CSV with a header row.  The first column is the key, named
``identity`` (a person's name as the dataset spells it, e.g. LFW's
``Aaron_Peirsol``) or ``image`` (an image file name or a path relative to
the dataset, matched against the end of each image's path); every other
column is one attribute (``sex``, ``age``, ``skin`` …)::

    identity,sex,age
    Aaron_Peirsol,male,20-39
    Serena_Williams,female,20-39

An empty cell means "unknown": the key is left out of that attribute's
groups.  Every problem is a one-line :class:`~harness.errors.DataError`
naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from harness.errors import DataError

__all__ = ["KEY_COLUMNS", "GroupTable", "parse_groups_text", "read_groups"]

KEY_COLUMNS = ("identity", "image")
MAX_BYTES = 64 << 20
MAX_FIELD = 200


@dataclass(frozen=True)
class GroupTable:
    """Attributes by identity or by image.

    :param key: ``identity`` or ``image``.
    :param attributes: attribute names, in file order.
    :param values: key -> {attribute: value}; unknown values are absent.
    :param source: the file it came from (for messages and the report).
    """

    key: str
    attributes: tuple[str, ...]
    values: Mapping[str, Mapping[str, str]]
    source: str = ""

    def groups(self, attribute: str) -> list[str]:
        """The distinct values of ``attribute``, sorted."""
        return sorted({v[attribute] for v in self.values.values() if attribute in v})

    def lookup_images(self, keys: Sequence[str], identities: Sequence[str]) -> list[Mapping[str, str]]:
        """Attributes of each image, from its identity name or its path.

        An ``image`` key matches a path equal to it or ending in ``/`` + key
        (separators normalised to ``/``); the longest matching key wins.
        """
        if self.key == "identity":
            return [self.values.get(str(n), {}) for n in identities]
        by_name: dict[str, list[str]] = {}
        for k in self.values:
            by_name.setdefault(k.rsplit("/", 1)[-1], []).append(k)
        out = []
        for path in keys:
            p = str(path).replace(os.sep, "/").replace("\\", "/")
            cands = [k for k in by_name.get(p.rsplit("/", 1)[-1], ()) if p == k or p.endswith("/" + k)]
            out.append(self.values[max(cands, key=len)] if cands else {})
        return out


def _bad(where: str, line: int, msg: str) -> DataError:
    return DataError(f"{where}:{line}: {msg}")


def _header(row: list[str], where: str) -> tuple[str, tuple[str, ...]]:
    cols = [c.strip() for c in row]
    if not cols or cols[0].lower() not in KEY_COLUMNS:
        raise _bad(where, 1, f"the first column is {cols[0] if cols else ''!r}; expected a header starting "
                             "'identity' or 'image', then one column per attribute (e.g. identity,sex,age)")
    attrs = cols[1:]
    if not attrs:
        raise _bad(where, 1, "no attribute columns; expected e.g. identity,sex,age")
    for i, a in enumerate(attrs, 2):
        if not a or len(a) > MAX_FIELD:
            raise _bad(where, 1, f"column {i} has an empty or over-long name; every attribute needs a name")
        if a.lower() in KEY_COLUMNS:
            raise _bad(where, 1, f"column {i} is named {a!r}; give one key column (identity or image), first")
    dup = sorted({a for a in attrs if attrs.count(a) > 1})
    if dup:
        raise _bad(where, 1, f"attribute {dup[0]!r} appears twice in the header")
    return cols[0].lower(), tuple(attrs)


def parse_groups_text(text: str, where: str = "<groups>") -> GroupTable:
    """Parse the CSV text of a groups file (see the module docstring)."""
    if "\x00" in text:
        raise DataError(f"{where}: contains NUL bytes; expected a UTF-8 CSV (identity|image,attribute,…)")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise _bad(where, reader.line_num, f"not a readable CSV ({exc})") from None
    rows = [(n, r) for n, r in enumerate(rows, 1) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{where}: is empty; expected a header (identity,sex,…) and one row per identity or image")
    key, attrs = _header(rows[0][1], where)
    values: dict[str, dict[str, str]] = {}
    first_line: dict[str, int] = {}
    for n, row in rows[1:]:
        if len(row) != len(attrs) + 1:
            raise _bad(where, n, f"{len(row)} fields; the header has {len(attrs) + 1}")
        k = row[0].strip().replace("\\", "/")
        if not k:
            raise _bad(where, n, f"the {key} is empty")
        cells = [c.strip() for c in row[1:]]
        if len(k) > 4096 or any(len(c) > MAX_FIELD for c in cells):
            raise _bad(where, n, f"a field is over {MAX_FIELD} characters; attribute values are short labels")
        if k in values:
            raise _bad(where, n, f"{key} {k!r} is listed twice (first on line {first_line[k]})")
        values[k] = {a: c for a, c in zip(attrs, cells) if c}
        first_line[k] = n
    if not values:
        raise _bad(where, rows[0][0], f"a header but no rows; expected one row per {key}")
    return GroupTable(key, attrs, values, where)


def read_groups(path: str | os.PathLike) -> GroupTable:
    """Read a groups CSV; a file that cannot be read or parsed is a one-line DataError."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DataError(f"cannot read groups file {p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{p}: over {MAX_BYTES >> 20} MiB; a groups file lists identities or images, one a line")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: byte 0x{raw[exc.start]:02x} at offset {exc.start} is not UTF-8; "
                        "re-save the groups file as UTF-8") from None
    return parse_groups_text(text, str(p))
