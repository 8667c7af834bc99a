"""Exact top-k inner-product search that scales (1:N search over large galleries).

``topk_search(probes, gallery, k)`` returns, per probe, the ``k`` gallery rows with the largest
inner product, best first.  How:

* **Blocked product.**  Probes in blocks of up to 1,024 rows against gallery tiles; one
  score tile (rows x columns x 4 bytes) is preallocated and reused, sized to
  ``max_memory`` — the extra memory does not grow with the gallery.
* **Per-tile top-k by partial selection, no sort of the tile.**  The tile's columns are cut
  into ``CHUNK`` interleaved chunks (chunk j: columns j, j+m, j+2m, …); one vectorised pass
  takes each chunk's maximum, the ``k`` best chunk maxima are selected (``argpartition`` /
  ``torch.topk`` over m = columns / CHUNK values), and only those chunks' columns (k x CHUNK
  candidates) are ranked exactly.  The k best scores of the tile all lie in those chunks:
  any other chunk's maximum is at most the k-th chunk maximum, which is at most the k-th
  best score.  The running top-k of each probe merges the tiles' top-k.
* **Ties.**  Results are ordered by score, best first, then by gallery row (lower first), and
  among entries tied at the k-th place the lower rows are kept.  The chunk shortcut keeps
  the rule exactly: a row whose best unselected chunk ties the k-th score is re-selected
  from its whole tile row.  The ``faiss`` backends do not keep the rule at the k-th place
  (faiss's own heap decides which tied entry stays); their lists are re-ordered by the rule.
* **Backends** (``backend``): ``numpy`` (BLAS ``matmul`` into the preallocated tile),
  ``torch`` (``torch.mm`` with ``out=``; CUDA when present and ``device`` allows, else CPU),
  ``faiss`` (``IndexFlatIP``: exact, holds its own copy of the gallery, no memory bound) and
  ``faiss-ivf`` (``IndexIVFFlat``, inner product: *approximate*; ``nlist`` cells, ``nprobe``
  visited; its recall is measured by ``benchmarks/bench_search.py``).  ``auto``: torch
  when it imports, else numpy.
* **Scoring dtype** (``dtype``): ``float32``; ``float16`` / ``bfloat16`` (torch backend
  only) multiply in that dtype — the selection is exact for those rounded scores, which tie
  far more often (the tie rule then decides).

Inputs are not normalised here: pass unit vectors for cosine similarity.  Every input must
be finite.  ``k`` larger than the gallery gives ``len(gallery)`` columns; no probe or an
empty gallery gives empty results.  Nothing here imports torch or faiss until that backend
is used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import numpy as np

from harness.errors import ConfigError, DataError
from harness.specs import check_range, field_types, parse_option_value, settings_from_options

__all__ = ["BACKENDS", "CHUNK", "DTYPES", "SearchOptions", "TopK", "score_blocks", "select_topk", "tile_shape",
           "topk_search"]

BACKENDS = ("auto", "numpy", "torch", "faiss", "faiss-ivf")
DTYPES = ("float32", "float16", "bfloat16")
#: chunks per tile row in the partial selection
CHUNK = 16
#: probe rows of one block (the matrix product is at full speed well before this)
MAX_ROWS = 1024


@dataclass(frozen=True)
class SearchOptions:
    """``-o search.KEY=VALUE``: how 1:N scores are computed (see the module's text)."""

    #: auto (torch when installed, else numpy), numpy, torch, faiss (exact), faiss-ivf (approximate)
    backend: Literal["auto", "numpy", "torch", "faiss", "faiss-ivf"] = "auto"
    #: scoring dtype; float16 / bfloat16 need the torch backend
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    #: torch device: auto (cuda when available), cpu, cuda, cuda:N
    device: str = "auto"
    #: bytes one score tile may hold (numpy / torch backends)
    max_memory: int = 256 << 20
    #: faiss-ivf: inverted-list cells (0: 4 x sqrt(gallery size))
    nlist: int = 0
    #: faiss-ivf: cells visited per probe
    nprobe: int = 32

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for f in dataclasses.fields(self):
            value = parse_option_value(hints[f.name], getattr(self, f.name), where=f"search.{f.name}")
            object.__setattr__(self, f.name, value)
        check_range("search.max_memory", self.max_memory, 1 << 20, 1 << 44, integer=True)
        check_range("search.nlist", self.nlist, 0, 1 << 24, integer=True)
        check_range("search.nprobe", self.nprobe, 1, 1 << 24, integer=True)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"search.device={self.device!r}: expected auto, cpu, cuda or cuda:N")
        if self.dtype != "float32" and self.backend in ("numpy", "faiss", "faiss-ivf"):
            raise ConfigError(f"search.dtype={self.dtype} needs the torch backend (search.backend=torch; "
                              f"pip install 'facebench[torch]'); {self.backend} scores in float32")

    @classmethod
    def from_options(cls, values: Any) -> "SearchOptions":
        return settings_from_options(cls, "search", values)


@dataclass
class TopK:
    """Per probe, the best ``k`` gallery rows (``indices``) and their ``scores``, best first;
    ``backend`` says how they were computed (e.g. ``torch cpu float32``)."""

    scores: np.ndarray
    indices: np.ndarray
    backend: str


# ------------------------------------------------------------------ inputs
def _matrices(probes: Any, gallery: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.ascontiguousarray(probes, dtype=np.float32)
    g = np.ascontiguousarray(gallery, dtype=np.float32)
    if p.ndim == 1 and p.size == 0:
        p = p.reshape(0, g.shape[1] if g.ndim == 2 else 0)
    if p.ndim != 2 or g.ndim != 2:
        raise DataError(f"probes {p.shape}, gallery {g.shape}: expected two matrices (rows, dimension)")
    if p.shape[1] != g.shape[1] and p.shape[0] and g.shape[0]:
        raise DataError(f"probes have dimension {p.shape[1]}, the gallery {g.shape[1]}: expected the same")
    for name, x in (("probes", p), ("gallery", g)):
        # NaN and infinities reach the row sums (one BLAS pass, no full-size temporary)
        if x.size and not np.isfinite(x @ np.ones(x.shape[1], np.float32)).all():
            raise DataError(f"{name}: contain NaN or infinite values (or values so large their sums overflow); "
                            "expected finite embeddings")
    return p, g


def tile_shape(n_probes: int, n_gallery: int, max_memory: int, *, full_rows: bool = False) -> tuple[int, int]:
    """(probe rows, gallery columns) of one float32 score tile within ``max_memory`` bytes.  With
    ``full_rows`` a tile spans the whole gallery (at least one row, even past the bound)."""
    cells = max(int(max_memory) // 4, 1)
    if full_rows or n_gallery == 0:
        return max(1, min(n_probes, cells // max(n_gallery, 1), MAX_ROWS * 64)), max(n_gallery, 1)
    rows = max(1, min(n_probes, MAX_ROWS, cells // min(n_gallery, 4 * CHUNK * 64)))
    cols = min(n_gallery, max(cells // rows, 1))
    if cols < n_gallery and cols > CHUNK:
        cols -= cols % CHUNK
    return rows, cols


# --------------------------------------------------------------- selection
def _order_key(scores: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """One uint64 per candidate, ascending in (score descending, column ascending): the float32
    bits mapped to an order-preserving unsigned integer (-0.0 taken as 0.0), then the column."""
    bits = (np.asarray(scores, np.float32) + np.float32(0)).view(np.uint32).astype(np.uint64)
    ordered = np.where(bits >> 31 == 1, ~bits & 0xFFFFFFFF, bits | 0x80000000)
    return ((0xFFFFFFFF - ordered) << 32) | np.asarray(cols).astype(np.uint64)


def _merge(scores: np.ndarray, cols: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row of candidates (columns below 2**32): score descending, then
    column ascending — a partial selection on one integer key, then a sort of the k kept."""
    key = _order_key(scores, cols)
    if key.shape[1] > k:
        keep = np.argpartition(key, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(keep, np.argsort(np.take_along_axis(key, keep, 1), axis=1), 1)
    else:
        order = np.argsort(key, axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(cols, order, 1)


def _exact_rows(rows: np.ndarray, kth: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of whole rows that each hold at least k scores ``>= kth`` (the tie fallback)."""
    r, c = np.nonzero(rows >= kth[:, None])
    v = rows[r, c]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    starts = np.searchsorted(r, np.arange(len(rows)))
    keep = (np.arange(len(r)) - starts[r]) < k
    return v[keep].reshape(len(rows), k), c[keep].reshape(len(rows), k).astype(np.int64)


def _candidates_numpy(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate scores and columns of each row holding its top ``k``, and the best unselected
    chunk maximum (``-inf`` when every column is a candidate)."""
    b, n = s.shape
    m = n // CHUNK
    if m <= 2 * k:  # too narrow for chunks to pay: every column is a candidate
        return s, np.broadcast_to(np.arange(n), (b, n)), np.full(b, -np.inf, np.float32)
    cm = s[:, : m * CHUNK].reshape(b, CHUNK, m).max(axis=1)
    part = np.argpartition(-cm, k, axis=1)[:, : k + 1]
    second = np.take_along_axis(cm, part[:, k:], 1)[:, 0]
    cols = (part[:, None, :k] + m * np.arange(CHUNK)[None, :, None]).reshape(b, -1)
    cols = np.concatenate([cols, np.broadcast_to(np.arange(m * CHUNK, n), (b, n - m * CHUNK))], axis=1)
    return np.take_along_axis(s, cols, 1), cols, second


def _candidates_torch(s: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_candidates_numpy` on a torch tile (any device); candidates come back as numpy."""
    import torch

    b, n = s.shape
    m = n // CHUNK
    if m <= 2 * k:
        return (s.float().cpu().numpy(), np.broadcast_to(np.arange(n), (b, n)),
                np.full(b, -np.inf, np.float32))
    cm = s[:, : m * CHUNK].view(b, CHUNK, m).amax(dim=1)
    vals, part = torch.topk(cm, k + 1, dim=1, sorted=True)
    ar = torch.arange(CHUNK, device=s.device) * m
    cols = (part[:, None, :k] + ar[None, :, None]).reshape(b, -1)
    if n > m * CHUNK:
        tail = torch.arange(m * CHUNK, n, device=s.device).expand(b, -1)
        cols = torch.cat([cols, tail], dim=1)
    return (torch.gather(s, 1, cols).float().cpu().numpy(), cols.cpu().numpy(),
            vals[:, k].float().cpu().numpy())


def _tile_topk(s: Any, k: int, to_numpy: Any, candidates: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (score, column) of each row of one score tile, with the tie rule."""
    k = min(k, s.shape[1])
    cs, cc, second = candidates(s, k)
    best, cols = _merge(np.asarray(cs, np.float32), np.asarray(cc, np.int64), k)
    tied = np.flatnonzero(second >= best[:, k - 1])  # an unselected chunk reaches the k-th score
    if tied.size:
        best[tied], cols[tied] = _exact_rows(to_numpy(s, tied), best[tied, k - 1], k)
    return best, cols


def select_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of each row of a numpy score matrix by partial selection: (scores, columns), score
    descending then column ascending (``min(k, columns)`` of them)."""
    s = np.ascontiguousarray(scores, np.float32)
    if s.ndim != 2:
        raise DataError(f"scores: shape {s.shape}; expected (rows, columns)")
    if s.shape[0] == 0 or s.shape[1] == 0:
        k = min(k, s.shape[1])
        return np.zeros((s.shape[0], k), np.float32), np.zeros((s.shape[0], k), np.int64)
    return _tile_topk(s, k, lambda x, rows: x[rows], _candidates_numpy)


# ---------------------------------------------------------------- backends
class _NumpyScorer:
    """Tiles ``p @ g.T`` with BLAS into one preallocated float32 buffer."""

    name = "numpy cpu float32"

    def __init__(self, gallery: np.ndarray, cells: int) -> None:
        self.g = gallery
        self.buf = np.empty(cells, np.float32)

    def tile(self, p: np.ndarray, c0: int, c1: int) -> np.ndarray:
        out = self.buf[: len(p) * (c1 - c0)].reshape(len(p), c1 - c0)
        np.matmul(p, self.g[c0:c1].T, out=out)
        return out

    @staticmethod
    def rows(s: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return s[idx]

    numpy = staticmethod(lambda s: s)
    candidates = staticmethod(_candidates_numpy)


class _TorchScorer:
    """Tiles ``torch.mm(p, g.T, out=…)`` on the chosen device and dtype; the gallery is moved
    (and cast) once."""

    def __init__(self, gallery: np.ndarray, cells: int, dtype: str, device: str) -> None:
        torch = _torch()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"search.device={device}: torch sees no CUDA device; use search.device=cpu or auto")
        self.torch, self.device, self.dtype = torch, torch.device(device), getattr(torch, dtype)
        self.g = torch.from_numpy(gallery).to(self.device, self.dtype)
        self.buf = torch.empty(cells, dtype=self.dtype, device=self.device)
        self.name = f"torch {self.device.type} {dtype}"

    def tile(self, p: np.ndarray, c0: int, c1: int) -> Any:
        pt = self.torch.from_numpy(p).to(self.device, self.dtype)
        out = self.buf[: len(p) * (c1 - c0)].view(len(p), c1 - c0)
        return self.torch.mm(pt, self.g[c0:c1].t(), out=out)

    def rows(self, s: Any, idx: np.ndarray) -> np.ndarray:
        return s[self.torch.from_numpy(idx).to(s.device)].float().cpu().numpy()

    @staticmethod
    def numpy(s: Any) -> np.ndarray:
        return s.float().cpu().numpy()

    candidates = staticmethod(_candidates_torch)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ConfigError("search.backend=torch needs torch: pip install 'facebench[torch]' "
                          "(or search.backend=numpy)") from None
    return torch


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise ConfigError("search.backend=faiss needs faiss: pip install 'facebench[faiss]' "
                          "(or search.backend=numpy)") from None
    return faiss


def _scorer(gallery: np.ndarray, options: SearchOptions, cells: int) -> Any:
    backend = options.backend
    if backend == "auto":
        import importlib.util

        backend = "torch" if importlib.util.find_spec("torch") is not None else "numpy"
    if backend == "torch":
        return _TorchScorer(gallery, cells, options.dtype, options.device)
    if options.dtype != "float32":
        raise ConfigError(f"search.dtype={options.dtype} needs the torch backend: pip install 'facebench[torch]'")
    return _NumpyScorer(gallery, cells)


# ------------------------------------------------------------------ search
def score_blocks(probes: Any, gallery: Any, options: SearchOptions | None = None
                 ) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, scores)``: the probes in blocks, each block's float32 inner products with
    the *whole* gallery, the block sized to ``options.max_memory`` (at least one probe).  A
    block's array is reused for the next one: copy what must outlive it."""
    options = options or SearchOptions()
    if options.backend.startswith("faiss"):
        raise ConfigError(f"search.backend={options.backend} returns candidate lists only; 1:N ranks need "
                          "every score: use search.backend=torch or numpy")
    p, g = _matrices(probes, gallery)
    rows, cols = tile_shape(len(p), len(g), options.max_memory, full_rows=True)
    scorer = _scorer(g, options, rows * cols)
    for s in range(0, len(p), rows):
        e = min(len(p), s + rows)
        yield s, e, scorer.numpy(scorer.tile(p[s:e], 0, len(g)))


def _empty(n: int, k: int, name: str) -> TopK:
    return TopK(np.zeros((n, k), np.float32), np.zeros((n, k), np.int64), name)


def topk_search(probes: Any, gallery: Any, k: int, options: SearchOptions | None = None, **settings: Any) -> TopK:
    """Exact (or, with ``faiss-ivf``, approximate) top-``k`` inner-product search; see the module's
    text for blocks, memory, ties and backends.  ``settings`` are :class:`SearchOptions` fields."""
    options = dataclasses.replace(options, **settings) if options else SearchOptions(**settings)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r}: expected an integer >= 1")
    p, g = _matrices(probes, gallery)
    k = min(int(k), len(g))
    if len(p) == 0 or k == 0:
        return _empty(len(p), k, options.backend)
    if options.backend.startswith("faiss"):
        return _faiss_search(p, g, k, options)
    rows, cols = tile_shape(len(p), len(g), options.max_memory)
    scorer = _scorer(g, options, rows * cols)
    out = _empty(len(p), k, scorer.name)
    for s in range(0, len(p), rows):
        e = min(len(p), s + rows)
        best = cand = None
        for c0 in range(0, len(g), cols):
            c1 = min(len(g), c0 + cols)
            ts, tc = _tile_topk(scorer.tile(p[s:e], c0, c1), k, scorer.rows, scorer.candidates)
            tc += c0
            if best is None:
                best, cand = ts, tc
            else:
                best, cand = _merge(np.concatenate([best, ts], 1), np.concatenate([cand, tc], 1), k)
        out.scores[s:e], out.indices[s:e] = best, cand
    return out


def _faiss_search(p: np.ndarray, g: np.ndarray, k: int, options: SearchOptions) -> TopK:
    """``faiss`` (IndexFlatIP, exact) or ``faiss-ivf`` (IndexIVFFlat, approximate); re-ordered by the
    tie rule.  A row faiss could not fill (IVF: too few candidates in the visited cells) is
    padded with index -1 and score -inf."""
    faiss = _faiss()
    d = g.shape[1]
    if options.backend == "faiss":
        index, name = faiss.IndexFlatIP(d), "faiss IndexFlatIP (exact)"
    else:
        nlist = options.nlist or max(1, int(4 * np.sqrt(len(g))))
        nlist = min(nlist, len(g))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = g[np.sort(rng.choice(len(g), min(len(g), 40 * nlist), replace=False))]
        index.train(sample)
        index.nprobe = min(options.nprobe, nlist)
        name = f"faiss IndexIVFFlat (approximate: nlist={nlist}, nprobe={index.nprobe})"
    index.add(g)
    scores, idx = index.search(p, k)
    scores = np.where(idx < 0, -np.inf, scores).astype(np.float32)
    idx = np.where(idx < 0, np.iinfo(np.int64).max, idx).astype(np.int64)  # unfilled places last
    order = np.lexsort((idx, -scores), axis=1)
    scores, idx = np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)
    return TopK(scores, np.where(idx == np.iinfo(np.int64).max, -1, idx), name)
