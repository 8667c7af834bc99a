"""The epoch plan (order, flips, P x K batches, sharding) and the image transform."""

from __future__ import annotations

import numpy as np
import pytest

from facebench_plugins.engines._data import ImageTransform, plan_epoch
from harness.errors import ConfigError, DataError


def test_plan_is_a_pure_function_of_seed_and_epoch():
    labels = np.arange(50) % 5
    a = plan_epoch(labels, batch_size=8, seed=3, epoch=1)
    b = plan_epoch(labels, batch_size=8, seed=3, epoch=1)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.flips, b.flips)
    c = plan_epoch(labels, batch_size=8, seed=3, epoch=2)
    d = plan_epoch(labels, batch_size=8, seed=4, epoch=1)
    assert not np.array_equal(a.indices, c.indices) and not np.array_equal(a.indices, d.indices)
    # 50 // 8 full batches, each image at most once, the tail dropped
    assert a.indices.shape == (6, 8) and len(np.unique(a.indices)) == 48
    assert 0.3 < a.flips.mean() < 0.7
    assert not plan_epoch(labels, batch_size=8, seed=3, epoch=1, flip=False).flips.any()


def test_batches_from_a_position_skip_exactly_the_done_ones():
    plan = plan_epoch(np.arange(40) % 4, batch_size=8, seed=0, epoch=0)
    full = plan.batches()
    assert plan.batches(3) == full[3:]
    assert all(isinstance(i, int) and isinstance(f, bool) for batch in full for i, f in batch)


def test_ranks_take_every_world_th_item_of_the_global_batch():
    labels = np.arange(64) % 8
    whole = plan_epoch(labels, batch_size=8, seed=1, epoch=0)
    parts = [plan_epoch(labels, batch_size=8, seed=1, epoch=0, rank=r, world=2) for r in range(2)]
    np.testing.assert_array_equal(parts[0].indices, whole.indices[:, 0::2])
    np.testing.assert_array_equal(parts[1].indices, whole.indices[:, 1::2])
    np.testing.assert_array_equal(parts[1].flips, whole.flips[:, 1::2])
    with pytest.raises(ConfigError, match="divisible by the world size"):
        plan_epoch(labels, batch_size=9, seed=1, epoch=0, world=2)


def test_pk_batches_hold_p_identities_times_k_images():
    # 12 identities; 3 of them have fewer than K=4 images (2, 1 and 3).
    sizes = [10, 8, 2, 6, 5, 1, 9, 4, 3, 7, 6, 5]
    labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
    plan = plan_epoch(labels, batch_size=16, seed=5, epoch=0, sampler="pk", k=4)
    assert plan.indices.shape == (len(labels) // 16, 16)
    seen = set()
    for batch in plan.indices:
        groups = batch.reshape(4, 4)  # P=4 groups of K=4
        ids = [set(labels[g]) for g in groups]
        assert all(len(s) == 1 for s in ids), "a group mixes identities"
        ids = [s.pop() for s in ids]
        assert len(set(ids)) == 4, "an identity appears twice in one batch"
        for ident, g in zip(ids, groups):
            if sizes[ident] >= 4:
                assert len(set(g)) == 4, "images repeated although the identity has K"
        seen.update(ids)
    # identities are visited in turn, so 4 batches x 4 identities cover all 12
    assert seen == set(range(12))
    # identities with fewer than K images still give K items (drawn with replacement)
    small = [g for b in plan.indices for g in b.reshape(4, 4) if sizes[labels[g[0]]] < 4]
    assert small and all(len(g) == 4 and len(set(g)) <= sizes[labels[g[0]]] for g in small)


def test_pk_identities_are_used_evenly():
    labels = np.repeat(np.arange(20), 8)  # 20 identities x 8 images
    counts = np.zeros(20, int)
    for epoch in range(3):
        plan = plan_epoch(labels, batch_size=16, seed=0, epoch=epoch, sampler="pk", k=4)
        np.add.at(counts, labels[plan.indices.reshape(-1)], 1)
    assert counts.max() - counts.min() <= 8  # within two K-groups of each other


def test_pk_refuses_what_it_cannot_fill():
    labels = np.repeat(np.arange(3), 10)
    with pytest.raises(ConfigError, match="divisible by K"):
        plan_epoch(labels, batch_size=10, seed=0, epoch=0, sampler="pk", k=4)
    with pytest.raises(DataError, match="at least P"):
        plan_epoch(labels, batch_size=16, seed=0, epoch=0, sampler="pk", k=4)
    with pytest.raises(ConfigError, match="unknown sampler"):
        plan_epoch(labels, batch_size=8, seed=0, epoch=0, sampler="balanced")
    with pytest.raises(DataError, match="fewer than one batch"):
        plan_epoch(labels, batch_size=64, seed=0, epoch=0)


def test_transform_resizes_normalises_and_flips():
    t = ImageTransform((16, 12), mean=(127.5, 127.5, 127.5), std=(128.0, 128.0, 128.0))
    img = np.zeros((32, 24, 3), np.uint8)
    img[:, :12] = 255  # left half white
    x = t(img)
    assert x.shape == (3, 16, 12) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.isclose(x[0, 0, 0], (255 - 127.5) / 128) and np.isclose(x[0, 0, -1], -127.5 / 128)
    xf = t(img, flip=True)
    np.testing.assert_array_equal(xf, x[:, :, ::-1])
    gray = t(np.full((16, 12), 200, np.uint8))  # grayscale is expanded to RGB
    assert gray.shape == (3, 16, 12) and np.allclose(gray, (200 - 127.5) / 128)
    t2 = ImageTransform((4, 4), mean=(10, 20, 30), std=(1, 2, 4))
    out = t2(np.tile(np.array([10, 40, 70], np.uint8), (4, 4, 1)))
    np.testing.assert_allclose(out[:, 0, 0], [0, 10, 10])
    with pytest.raises(DataError, match="RGB"):
        t(np.zeros((4, 4, 2), np.uint8))
