"""Training data for the torch engine: the epoch plan and the dataset.

The whole epoch is planned up front, as a pure function of ``(seed, epoch)``:
which images form each batch, and whether each one is flipped.  Nothing in
the plan depends on the process, the number of workers or where a previous
run stopped, so a run killed mid-epoch and resumed skips exactly the batches
it already did and sees the same images, flipped the same way, as a run that
was never interrupted.

Samplers
--------
``random``
    A seeded permutation of the images, cut into ``len // batch_size`` full
    batches (the short tail is dropped, as usual for BatchNorm networks).
``pk``
    Class-balanced P x K batches (P identities, K images of each, for
    metric-learning losses such as triplet).  Identities are visited in
    successive seeded permutations, so each one gets its turn before any is
    repeated, and the P identities in a batch are always distinct.  Each
    identity's images are drawn from its own seeded shuffled queue, refilled
    when exhausted, so an identity's images are used evenly.  An identity
    with fewer than K images has its K drawn **with replacement** (the same
    image may appear more than once in its group; the random flip then often
    makes the copies differ).  An epoch has ``len // batch_size`` batches, the
    same count as the ``random`` sampler.

Sharding (for a later DDP engine)
---------------------------------
The plan is made of *global* batches.  Rank ``r`` of ``world`` takes items
``r, r + world, r + 2*world, ...`` of every global batch, so the union of the
ranks' items is exactly the global batch (``batch_size`` must be divisible by
``world``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.errors import ConfigError, DataError

__all__ = ["EpochPlan", "ImageTransform", "TrainDataset", "TrainOutcome", "embed_source", "plan_epoch",
           "steps_per_epoch"]

SAMPLERS = ("random", "pk")


@dataclass(frozen=True)
class EpochPlan:
    """One epoch of (this rank's) batches.

    :param indices: (num_batches, per_rank_batch) image indices.
    :param flips: (num_batches, per_rank_batch) bool, horizontal flip.
    """

    indices: np.ndarray
    flips: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, start: int = 0) -> list[list[tuple[int, bool]]]:
        """Batches from position ``start`` on, as lists of (index, flip)."""
        return [
            [(int(i), bool(f)) for i, f in zip(idx, flp)]
            for idx, flp in zip(self.indices[start:], self.flips[start:])
        ]


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches per epoch (the same for both samplers)."""
    return num_images // batch_size


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    # Distinct, independent streams per (seed, epoch, purpose).
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), stream])


def plan_epoch(
    labels: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    sampler: str = "random",
    k: int = 4,
    flip: bool = True,
    rank: int = 0,
    world: int = 1,
) -> EpochPlan:
    """The batches of ``epoch``: a pure function of the arguments.

    :param labels: (N,) identity of each image.
    :param batch_size: the global batch size (all ranks together).
    :param sampler: ``"random"`` or ``"pk"``.
    :param k: K of the P x K sampler.
    :param flip: random horizontal flips (p = 0.5), decided per position.
    :raises ConfigError: a batch size that does not fit the data or sampler.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(labels)
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if not (0 <= rank < world):
        raise ConfigError(f"rank {rank} is outside world size {world}")
    if batch_size % world:
        raise ConfigError(
            f"batch_size {batch_size} is not divisible by the world size {world}: "
            "each rank takes every world-th item of a global batch"
        )
    num_batches = steps_per_epoch(n, batch_size)
    if num_batches == 0:
        raise DataError(
            f"the training set has {n} images, fewer than one batch of {batch_size}: "
            "lower training.batch_size or train on more images"
        )
    if sampler == "random":
        order = _rng(seed, epoch, 0).permutation(n)[: num_batches * batch_size]
        batches = order.reshape(num_batches, batch_size)
    else:
        batches = _pk_batches(labels, batch_size, k, num_batches, _rng(seed, epoch, 0))
    flips = (
        _rng(seed, epoch, 1).random(batches.shape) < 0.5
        if flip
        else np.zeros(batches.shape, dtype=bool)
    )
    return EpochPlan(indices=batches[:, rank::world].copy(), flips=flips[:, rank::world].copy())


def _pk_batches(
    labels: np.ndarray, batch_size: int, k: int, num_batches: int, rng: np.random.Generator
) -> np.ndarray:
    if batch_size % k:
        raise ConfigError(
            f"the pk sampler needs batch_size divisible by K: batch_size {batch_size}, "
            f"K {k} (set -o torch.pk_k=... or change training.batch_size)"
        )
    p = batch_size // k
    classes = np.unique(labels[labels >= 0])
    if len(classes) < p:
        raise DataError(
            f"the pk sampler needs at least P = batch_size / K = {p} identities per batch, "
            f"but the training set has {len(classes)}: lower batch_size or raise pk_k"
        )
    members = {int(c): np.flatnonzero(labels == c) for c in classes}
    queues: dict[int, list[int]] = {c: [] for c in members}
    stream: list[int] = []
    out = np.empty((num_batches, batch_size), dtype=np.int64)
    for b in range(num_batches):
        chosen: list[int] = []
        deferred: list[int] = []
        while len(chosen) < p:
            if not stream:
                stream = [int(c) for c in rng.permutation(classes)]
            c = stream.pop(0)
            (deferred if c in chosen else chosen).append(c)
        stream = deferred + stream  # a skipped duplicate keeps its turn
        row = []
        for c in chosen:
            imgs = members[c]
            if len(imgs) < k:  # too few images: draw K with replacement
                row.extend(int(i) for i in rng.choice(imgs, size=k, replace=True))
                continue
            q = queues[c]
            if len(q) < k:  # refill; leftovers go first, so no image repeats in a group
                left = set(q)
                fresh = [int(i) for i in rng.permutation(imgs)]
                q.extend([i for i in fresh if i not in left] + [i for i in fresh if i in left])
            row.extend(q[:k])
            del q[:k]
        out[b] = row
    return out


class ImageTransform:
    """RGB uint8 image -> normalised CHW float32 at the backbone's input size.

    :param input_size: (H, W) of the backbone.
    :param mean, std: per-channel normalisation of RGB values in [0, 255].
    """

    def __init__(
        self,
        input_size: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        self.height, self.width = int(input_size[0]), int(input_size[1])
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(1, 1, 3)

    def __call__(self, image: np.ndarray, flip: bool = False) -> np.ndarray:
        img = np.asarray(image)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise DataError(f"expected an RGB image (H, W, 3), got shape {img.shape}")
        img = img[:, :, :3]
        if img.shape[0] != self.height or img.shape[1] != self.width:
            import cv2

            shrink = img.shape[0] > self.height or img.shape[1] > self.width
            img = cv2.resize(
                np.ascontiguousarray(img),
                (self.width, self.height),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
            )
        if flip:
            img = img[:, ::-1]
        x = (img.astype(np.float32) - self.mean) * self.inv_std
        return np.ascontiguousarray(x.transpose(2, 0, 1))


class TrainDataset:
    """A map-style torch dataset over an ImageSet; items are keyed by
    ``(index, flip)`` pairs from an :class:`EpochPlan`."""

    def __init__(self, images, transform: ImageTransform) -> None:
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, item: tuple[int, bool]):
        import torch

        index, flip = item
        try:
            image = self.images.load(index)
        except Exception as exc:
            key = self.images.keys[index] if hasattr(self.images, "keys") else index
            raise DataError(f"cannot load training image {key!r}: {exc}") from exc
        x = torch.from_numpy(self.transform(image, flip))
        return x, int(self.images.labels[index])


@dataclass
class TrainOutcome:
    """What an engine's ``train`` returns (the torch and the tf engine alike).

    :param model: the trained backbone, in eval mode.
    :param loss_fn: the trained loss (class weights / centres), in eval mode.
    :param history: per-step lists ``step`` (1-based global step), ``epoch``
        (1-based epoch of the step), ``loss``, ``lr``, ``accuracy`` (batch
        accuracy of a classifier loss, else None) and ``img_per_s``; and
        ``eval``: one dict per completed epoch with ``epoch``, ``step`` and
        the metrics ``on_epoch_end`` returned.
    :param steps: global optimizer steps done (including before a resume).
    :param epochs_done: complete epochs.
    :param checkpoint: the final checkpoint (``workdir/checkpoints/last.pt``).
    :param resumed_from_step: the step the run resumed from, or None.
    :param wall_s: seconds this call spent (not counting earlier runs).
    :param device: the torch device trained on.
    :param stopped_by: ``"epochs"``, ``"max_steps"`` or ``"time_budget"``.
    :param init: how ``init=`` weights matched the model, when given.
    """

    model: Any
    loss_fn: Any
    history: dict[str, Any]
    steps: int
    epochs_done: int
    checkpoint: Path
    resumed_from_step: int | None
    wall_s: float
    device: str
    stopped_by: str
    init: dict[str, Any] | None = None


def embed_source(images: Any, n: int | None, *, flip: str | None, batch_size: int) -> tuple[Callable[[int], Any], int]:
    """``(get, count)`` of what an engine's ``embed`` was given — a sequence of images, an
    object with ``load(i)`` and ``len()`` (an ImageSet), or a callable with ``n`` — after
    checking ``flip`` and ``batch_size``."""
    if flip not in (None, "concat", "sum"):
        raise ConfigError(f"flip must be 'concat', 'sum' or None, got {flip!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if callable(images) and not hasattr(images, "__len__"):
        if n is None:
            raise ConfigError("embed(images=callable) needs n, the number of images")
        return images, int(n)
    if hasattr(images, "load"):
        return images.load, len(images)
    return images.__getitem__, len(images)
