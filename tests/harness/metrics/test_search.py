"""Exact top-k search (harness.metrics.search) against a brute-force full sort: every backend,
tile and block boundaries, the tie rule, edge cases (k > gallery, one probe, empty inputs),
half-precision scoring and the settings."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError, DataError
from harness.metrics.search import CHUNK, SearchOptions, score_blocks, select_topk, tile_shape, topk_search

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _backends():
    out = ["numpy"]
    for name, module in (("torch", "torch"), ("faiss", "faiss")):
        try:
            __import__(module)
            out.append(name)
        except ImportError:
            out.append(pytest.param(name, marks=pytest.mark.skip(reason=f"{module} is not installed")))
    return out


BACKENDS = _backends()


def brute(probes, gallery, k):
    """Full sort in float64: score descending, then gallery row ascending; the first k."""
    s = np.asarray(probes, np.float64) @ np.asarray(gallery, np.float64).T
    cols = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    order = np.lexsort((cols, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), order


def ties_free(n_probes, n_gallery, dim, seed, depth=26):
    """Gaussian unit rows, keeping the probes whose best ``depth`` float64 scores are at least 1e-5
    apart (far above float32 rounding of a unit-vector product, ~1e-7): no summation order can
    reorder their lists."""
    r = np.random.default_rng(seed)
    p = r.normal(size=(2 * n_probes, dim)).astype(np.float32)
    g = r.normal(size=(n_gallery, dim)).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    top = np.sort(p.astype(np.float64) @ g.astype(np.float64).T, axis=1)[:, ::-1][:, :depth]
    keep = np.flatnonzero((np.abs(np.diff(top, axis=1)) > 1e-5).all(axis=1))[:n_probes]
    assert len(keep) == n_probes, "too few ties-free probes; change the seed"
    return p[keep], g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_gallery, k, max_memory", [
    (9, 3, 1 << 20),          # narrower than the chunk shortcut: every column a candidate
    (5000, 10, 1 << 20),      # several gallery tiles per probe block (64 x 4096 tiles)
    (5000, 25, 64 << 20),     # one tile, chunk shortcut
    (4099, 1, 1 << 20),       # k = 1, a ragged last tile and chunk tail
])
def test_identical_top_k_to_brute_force_on_ties_free_data(backend, n_gallery, k, max_memory):
    p, g = ties_free(150, n_gallery, 24, seed=n_gallery + k)
    ref_s, ref_i = brute(p, g, k)
    res = topk_search(p, g, k, backend=backend, max_memory=max_memory)
    np.testing.assert_array_equal(res.indices, ref_i)
    np.testing.assert_allclose(res.scores, ref_s, rtol=1e-5, atol=1e-5)
    assert res.scores.dtype == np.float32 and res.indices.dtype == np.int64


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "faiss"])
@pytest.mark.parametrize("levels", [2, 5, 40])
def test_tie_rule_lower_rows_first_and_kept_at_the_kth_place(backend, levels):
    """Small-integer vectors: scores are exact in float32 and tie massively; the lists must be the
    full sort's (score, then row), whichever chunk or tile a tied entry falls in."""
    r = np.random.default_rng(levels)
    g = r.integers(-1, levels, (3000, 6)).astype(np.float32)
    p = r.integers(-1, levels, (70, 6)).astype(np.float32)
    for k, mem in ((10, 1 << 20), (7, 64 << 20), (1, 1 << 20)):
        ref_s, ref_i = brute(p, g, k)
        res = topk_search(p, g, k, backend=backend, max_memory=mem)
        np.testing.assert_array_equal(res.indices, ref_i)
        np.testing.assert_array_equal(res.scores, ref_s.astype(np.float32))


@pytest.mark.parametrize("tied", [(70, 350), (50, 370)])
def test_tie_in_an_unselected_chunk_is_found(tied):
    """The k-th score shared by two chunks (chunk j holds columns j, j+m, …): whichever chunk the
    shortcut picks, the lower column must win.  The two layouts put the lower column in chunk 70
    and then in chunk 50, so one of them has the shortcut pick the wrong chunk first."""
    n, k = CHUNK * 100, 3
    m = n // CHUNK
    row = -1 - np.arange(n, dtype=np.float32) / n  # distinct, all below -1
    row[[5 * m + 1, 6 * m + 2]] = [9, 8]  # two clear winners (chunks 1 and 2)
    row[list(tied)] = 7  # the tie at the k-th place, in chunks 70 and 50
    s, c = select_topk(row[None], k)
    assert c.tolist() == [[5 * m + 1, 6 * m + 2, min(tied)]] and s.tolist() == [[9, 8, 7]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases(backend):
    p, g = ties_free(4, 6, 8, seed=1)
    res = topk_search(p, g, 50, backend=backend)  # k > gallery: every row, sorted
    assert res.indices.shape == (4, 6)
    np.testing.assert_array_equal(res.indices, brute(p, g, 6)[1])
    one = topk_search(p[:1], g, 2, backend=backend)  # one probe
    np.testing.assert_array_equal(one.indices, brute(p[:1], g, 2)[1])
    none = topk_search(np.zeros((0, 8), np.float32), g, 3, backend=backend)  # no probe
    assert none.indices.shape == (0, 3) and none.scores.shape == (0, 3)
    empty = topk_search(p, np.zeros((0, 8), np.float32), 3, backend=backend)  # empty gallery
    assert empty.indices.shape == (4, 0)
    single = topk_search(p, g[:1], 3, backend=backend)  # a gallery of one
    assert single.indices.tolist() == [[0]] * 4


@pytest.mark.parametrize("bad, exc, match", [
    ({"k": 0}, ConfigError, "k=0"), ({"k": 2.5}, ConfigError, "k=2.5"),
    ({"probes": np.ones((2, 3))}, DataError, "dimension 3"),
    ({"probes": np.array([[np.nan] * 8])}, DataError, "probes: contain NaN"),
    ({"gallery": np.ones(8)}, DataError, "two matrices"),
])
def test_bad_input_is_one_line_error(bad, exc, match):
    args = {"probes": np.ones((2, 8)), "gallery": np.ones((5, 8)), "k": 2, **bad}
    with pytest.raises(exc, match=match):
        topk_search(args["probes"], args["gallery"], args["k"], backend="numpy")


def test_select_topk_matches_a_full_sort_with_heavy_ties():
    r = np.random.default_rng(7)
    for shape, k in (((30, 2000), 10), ((5, 33), 5), ((3, 1000), 64), ((4, 17), 40)):
        s = r.integers(0, 4, shape).astype(np.float32)
        got_s, got_c = select_topk(s, k)
        cols = np.broadcast_to(np.arange(shape[1]), shape)
        order = np.lexsort((cols, -s), axis=1)[:, :k]
        np.testing.assert_array_equal(got_c, order)
        np.testing.assert_array_equal(got_s, np.take_along_axis(s, order, 1))
    assert select_topk(np.zeros((0, 5)), 3)[1].shape == (0, 3)


def test_score_blocks_respect_the_memory_bound():
    p, g = ties_free(300, 2000, 16, seed=3)
    seen = []
    for s, e, block in score_blocks(p, g, SearchOptions(backend="numpy", max_memory=1 << 20)):
        assert block.nbytes <= 1 << 20 and block.shape == (e - s, 2000)
        np.testing.assert_allclose(block, p[s:e] @ g.T, rtol=1e-5, atol=1e-5)
        seen.append((s, e))
    assert seen[0] == (0, 131) and seen[-1][1] == 300
    assert tile_shape(10_000, 1_000_000, 256 << 20) == (1024, 65536)
    assert tile_shape(3, 10, 1 << 20) == (3, 10)
    with pytest.raises(ConfigError, match="candidate lists only"):
        next(score_blocks(p, g, SearchOptions(backend="faiss")))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_scoring_is_exact_for_its_rounded_scores(dtype):
    torch = pytest.importorskip("torch")
    p, g = ties_free(40, 3000, 32, seed=5)
    res = topk_search(p, g, 10, backend="torch", dtype=dtype, device="cpu")
    assert res.backend == f"torch cpu {dtype}"
    # the reference: the same rounded product, whole rows, sorted by the tie rule
    t = getattr(torch, dtype)
    s = torch.mm(torch.from_numpy(p).to(t), torch.from_numpy(g).to(t).t()).float().numpy()
    cols = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    order = np.lexsort((cols, -s), axis=1)[:, :10]
    np.testing.assert_array_equal(res.indices, order)
    exact = brute(p, g, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact.tolist(), res.indices.tolist())])
    assert recall > 0.8, recall  # rounded scores, nearly the same lists


def test_faiss_ivf_visiting_every_cell_is_exact():
    pytest.importorskip("faiss")
    p, g = ties_free(50, 3000, 16, seed=9)
    res = topk_search(p, g, 5, backend="faiss-ivf", nlist=8, nprobe=8)
    assert "approximate" in res.backend
    np.testing.assert_array_equal(res.indices, brute(p, g, 5)[1])


@pytest.mark.parametrize("values, match", [
    ({"backend": "annoy"}, "search.backend"), ({"dtype": "int8"}, "search.dtype"),
    ({"max_memory": 1000}, "search.max_memory"), ({"device": "tpu"}, "search.device"),
    ({"backend": "numpy", "dtype": "float16"}, "needs the torch backend"), ({"maxmem": 1}, "maxmem"),
])
def test_options_refuse_bad_values(values, match):
    with pytest.raises(ConfigError, match=match):
        SearchOptions.from_options(values)
    assert SearchOptions.from_options({"max_memory": "2097152", "nprobe": "4"}).max_memory == 2 << 20
