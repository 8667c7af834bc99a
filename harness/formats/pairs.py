"""LFW ``pairs.txt``: read, write and generate verification pairs.

Format (LFW View 2)::

    10\t300                    folds, pairs per class per fold
    Name\t1\t4                 a genuine pair: two images of Name   (x 300)
    Name1\t1\tName2\t3         an impostor pair                      (x 300)
    ... repeated for each of the 10 folds

Image numbers are 1-based and resolve to ``Name/Name_%04d.jpg`` (or to the
file stem number for numbered layouts such as AT&T's ``s1/1.pgm``; see
:func:`harness.formats.folders.resolve_image`).  The View 1 files
(``pairsDevTrain.txt``) have a one-number header, ``1100``: one fold of 1,100
genuine then 1,100 impostor pairs; that is read as one fold.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from harness.errors import DataError
from harness.atomic import atomic_output
from harness.formats._fields import ascii_int

__all__ = ["Pair", "PairsFile", "generate_pairs", "parse_pairs", "parse_pairs_text", "write_pairs"]


@dataclass(frozen=True)
class Pair:
    """One pair line.  ``issame`` pairs have ``name1 == name2``."""

    name1: str
    n1: int
    name2: str
    n2: int
    fold: int
    line: int = 0

    @property
    def issame(self) -> bool:
        return self.name1 == self.name2

    def to_line(self) -> str:
        if self.issame:
            return f"{self.name1}\t{self.n1}\t{self.n2}"
        return f"{self.name1}\t{self.n1}\t{self.name2}\t{self.n2}"


@dataclass
class PairsFile:
    """A parsed pairs file; ``pairs`` are in file order."""

    folds: int
    per_fold: int
    pairs: list[Pair] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def protocol(self) -> str:
        n = len(self.pairs)
        if self.folds == 10 and self.per_fold == 300 and n == 6000:
            return "LFW View 2 (6,000 pairs, 10 folds)"
        return f"pairs file ({n:,} pairs, {self.folds} fold{'s' if self.folds != 1 else ''})"


def _bad(where: str, lineno: int, what: str, raw: str) -> DataError:
    return DataError(
        f"{where}, line {lineno}: {what}: {raw.strip()[:120]!r}; expected 'name<TAB>n1<TAB>n2' "
        "(genuine) or 'name1<TAB>n1<TAB>name2<TAB>n2' (impostor) with 1-based image numbers — "
        "fix the line or pass --skip-bad to ignore it"
    )


_MAX_NUMBER = 10**9  # image numbers, folds and pairs per fold above this are not a real pairs file
_NUMBERS = f"image numbers must be positive whole numbers (1 to {_MAX_NUMBER:,}, ASCII digits)"


def _number(tok: str) -> int | None:
    """A positive count of ASCII digits (``str.isdigit`` would admit '²'), or None."""
    return ascii_int(tok, lo=1, hi=_MAX_NUMBER)


def parse_pairs_text(text: str, where: str = "<pairs>", skip_bad: bool = False) -> PairsFile:
    """Parse pairs-file text.  ``where`` names the file in error messages.

    :param skip_bad: drop malformed pair lines (listed in ``skipped``) instead
        of raising.  A bad header is always an error.
    :raises DataError: naming the file and line, what was wrong and what was expected.
    """
    lines = text.splitlines()
    # first non-empty line is the header
    idx = 0
    while idx < len(lines) and not lines[idx].strip():
        idx += 1
    if idx >= len(lines):
        raise DataError(f"{where}: empty pairs file; expected a header line such as '10\\t300'")
    nums = [_number(t) for t in lines[idx].split()]
    if len(nums) == 2 and None not in nums:
        folds, per_fold = nums
    elif len(nums) == 1 and None not in nums:
        folds, per_fold = 1, nums[0]
    else:
        raise DataError(
            f"{where}, line {idx + 1}: bad header {lines[idx].strip()[:60]!r}; expected "
            "'<folds>\\t<pairs per class per fold>' such as '10\\t300' (or one number for View 1), "
            f"whole numbers from 1 to {_MAX_NUMBER:,}"
        )
    block = 2 * per_fold
    out = PairsFile(folds, per_fold)
    position = 0  # index among well-formed pair lines -> fold
    for lineno, raw in enumerate(lines[idx + 1:], start=idx + 2):
        if not raw.strip():
            continue
        toks = raw.split()
        try:
            if len(toks) == 3:
                n1, n2 = _number(toks[1]), _number(toks[2])
                if n1 is None or n2 is None:
                    raise _bad(where, lineno, _NUMBERS, raw)
                pair = Pair(toks[0], n1, toks[0], n2, position // block, lineno)
            elif len(toks) == 4:
                n1, n2 = _number(toks[1]), _number(toks[3])
                if n1 is None or n2 is None:
                    raise _bad(where, lineno, _NUMBERS, raw)
                pair = Pair(toks[0], n1, toks[2], n2, position // block, lineno)
            else:
                raise _bad(where, lineno, f"{len(toks)} fields", raw)
        except DataError as exc:
            if not skip_bad:
                raise
            out.skipped.append(str(exc))
            position += 1  # a skipped line still holds its place, so folds stay aligned
            continue
        out.pairs.append(pair)
        position += 1
    expected = folds * block
    if position != expected:
        msg = (
            f"{where}: {position} pair lines but the header '{folds} {per_fold}' promises "
            f"{expected} ({folds} folds x {per_fold} genuine + {per_fold} impostor); the file is "
            "truncated or the header is wrong"
        )
        if not skip_bad:
            raise DataError(msg)
        out.skipped.append(msg)
    return out


def parse_pairs(path: str | os.PathLike, skip_bad: bool = False) -> PairsFile:
    """Read an LFW-format pairs file (see :func:`parse_pairs_text`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{p}: pairs file not found; expected an LFW pairs.txt") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not a text file ({exc.reason} at byte {exc.start}); "
                        "expected an LFW pairs.txt") from None
    return parse_pairs_text(text, where=str(p), skip_bad=skip_bad)


def write_pairs(path: str | os.PathLike, folds: Sequence[Sequence[Pair]]) -> Path:
    """Write folds of pairs (each: genuine pairs then impostor pairs) atomically.

    Each fold must hold ``per_fold`` genuine pairs followed by ``per_fold``
    impostor pairs, the same ``per_fold`` for every fold.
    """
    if not folds:
        raise ValueError("no folds to write")
    per_fold = sum(p.issame for p in folds[0])
    for k, fold in enumerate(folds):
        same = [p for p in fold if p.issame]
        diff = [p for p in fold if not p.issame]
        if len(same) != per_fold or len(diff) != per_fold or list(fold) != same + diff:
            raise ValueError(
                f"fold {k}: expected {per_fold} genuine pairs followed by {per_fold} impostor pairs"
            )
    target = Path(path)
    with atomic_output(target, "w") as fh:
        fh.write(f"{len(folds)}\t{per_fold}\n")
        for fold in folds:
            for p in fold:
                fh.write(p.to_line() + "\n")
    return target


def _pair_key(a: str, i: int, b: str, j: int) -> tuple:
    """The same pair whichever way round it is written."""
    return tuple(sorted([(a, i), (b, j)]))


class _PairDrawer:
    """Draws distinct pairs for :func:`generate_pairs`, remembering every pair used.

    :param ids: identity name -> its sorted image numbers (non-empty).
    """

    def __init__(self, ids: Mapping[str, list[int]], per_fold: int, rng: random.Random) -> None:
        self.ids, self.per_fold, self.rng = ids, per_fold, rng
        self.used: set[tuple] = set()

    def same_capacity(self, group: Sequence[str]) -> int:
        return sum(len(self.ids[n]) * (len(self.ids[n]) - 1) // 2 for n in group)

    def diff_capacity(self, group: Sequence[str]) -> int:
        sizes = [len(self.ids[n]) for n in group]
        total = sum(sizes)
        return (total * total - sum(s * s for s in sizes)) // 2

    def release(self, pairs: Iterable[Pair]) -> None:
        """Forget pairs drawn for a fold that is drawn again from a bigger pool."""
        for p in pairs:
            self.used.discard(_pair_key(p.name1, p.n1, p.name2, p.n2))

    def draw_same(self, pool: Sequence[str], fold: int) -> list[Pair]:
        ids, rng = self.ids, self.rng
        cands = [n for n in pool if len(ids[n]) >= 2]
        out: list[Pair] = []
        all_pairs = [(n, a, b) for n in cands for ai, a in enumerate(ids[n]) for b in ids[n][ai + 1:]]
        all_pairs = [t for t in all_pairs if _pair_key(t[0], t[1], t[0], t[2]) not in self.used]
        rng.shuffle(all_pairs)
        # spread over identities: round-robin by identity after shuffling
        by_id: dict[str, list] = {}
        for t in all_pairs:
            by_id.setdefault(t[0], []).append(t)
        order_ids = list(by_id)
        rng.shuffle(order_ids)
        while len(out) < self.per_fold and order_ids:
            for n in list(order_ids):
                if len(out) >= self.per_fold:
                    break
                if not by_id[n]:
                    order_ids.remove(n)
                    continue
                name, a, b = by_id[n].pop()
                self.used.add(_pair_key(name, a, name, b))
                out.append(Pair(name, a, name, b, fold))
        return out

    def draw_diff(self, pool: Sequence[str], fold: int) -> list[Pair]:
        ids, rng, per_fold = self.ids, self.rng, self.per_fold
        out: list[Pair] = []
        tries = 0
        pool = list(pool)
        limit = 50 * per_fold + 1000
        while len(out) < per_fold and tries < limit:
            tries += 1
            a, b = rng.sample(pool, 2)
            if a > b:
                a, b = b, a
            i, j = rng.choice(ids[a]), rng.choice(ids[b])
            k = _pair_key(a, i, b, j)
            if k in self.used:
                continue
            self.used.add(k)
            out.append(Pair(a, i, b, j, fold))
        if len(out) < per_fold and self.diff_capacity(pool) >= per_fold:  # dense pools: enumerate the rest
            rest = [(a, i, b, j) for ai, a in enumerate(pool) for b in pool[ai + 1:]
                    for i in ids[a] for j in ids[b]]
            rest = [tuple(x) for x in rest if _pair_key(*x) not in self.used]
            rng.shuffle(rest)
            for a, i, b, j in rest[: per_fold - len(out)]:
                if a > b:
                    a, i, b, j = b, j, a, i
                self.used.add(_pair_key(a, i, b, j))
                out.append(Pair(a, i, b, j, fold))
        return out

    def fold(self, k: int, group: Sequence[str], names: Sequence[str], warnings: list[str]) -> list[Pair]:
        """Fold ``k``: genuine then impostor pairs from ``group``, or from ``names`` when it is too small."""
        per_fold = self.per_fold
        same = self.draw_same(group, k) if self.same_capacity(group) >= per_fold else []
        if len(same) < per_fold:
            self.release(same)
            warnings.append(f"fold {k + 1}: its {len(group)} identities give too few genuine pairs; "
                            "drew from all identities (identities repeat across folds)")
            same = self.draw_same(names, k)
        diff = self.draw_diff(group, k) if len(group) >= 2 and self.diff_capacity(group) >= per_fold else []
        if len(diff) < per_fold:
            self.release(diff)
            warnings.append(f"fold {k + 1}: its {len(group)} identities give too few impostor pairs; "
                            "drew from all identities (identities repeat across folds)")
            diff = self.draw_diff(names, k)
        if len(same) < per_fold or len(diff) < per_fold:
            raise DataError(
                f"fold {k + 1}: could draw only {len(same)} genuine and {len(diff)} impostor "
                f"distinct pairs of the {per_fold} each asked for; lower --pairs-per-fold"
            )
        return same + diff


def generate_pairs(
    identities: Mapping[str, Iterable[int]],
    folds: int = 10,
    per_fold: int = 300,
    seed: int = 0,
) -> tuple[list[list[Pair]], list[str]]:
    """Draw LFW-style folds: each fold has ``per_fold`` genuine then ``per_fold`` impostor pairs.

    Identities are split into disjoint groups, one per fold, so no identity
    appears in two folds; a fold whose group cannot give enough distinct
    pairs draws from every identity instead (noted in the returned warnings).
    No pair is repeated within the file.

    :param identities: identity name -> its image numbers (1-based).
    :returns: (folds of pairs, warnings).
    :raises DataError: even all identities together cannot give enough distinct pairs.
    """
    if folds < 1 or per_fold < 1:
        raise DataError(f"folds ({folds}) and pairs per fold ({per_fold}) must be at least 1")
    rng = random.Random(seed)
    ids = {name: sorted(set(int(n) for n in nums)) for name, nums in sorted(identities.items())}
    ids = {k: v for k, v in ids.items() if v}
    names = sorted(ids)
    if len(names) < 2:
        raise DataError(f"{len(names)} identities with images; impostor pairs need at least 2")
    order = names[:]
    rng.shuffle(order)
    groups = [order[k::folds] for k in range(folds)]
    drawer = _PairDrawer(ids, per_fold, rng)
    total_same = drawer.same_capacity(names)
    total_diff = drawer.diff_capacity(names)
    if total_same < folds * per_fold:
        raise DataError(
            f"only {total_same} distinct genuine pairs exist among {len(names)} identities but "
            f"{folds} folds x {per_fold} were asked for; lower --pairs-per-fold or --folds"
        )
    if total_diff < folds * per_fold:
        raise DataError(
            f"only {total_diff} distinct impostor pairs exist but {folds * per_fold} were asked "
            "for; lower --pairs-per-fold or --folds"
        )
    warnings: list[str] = []
    result = [drawer.fold(k, groups[k], names, warnings) for k in range(folds)]
    return result, warnings
