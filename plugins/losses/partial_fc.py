"""Partial FC: a margin softmax whose class centres are sharded across ranks.

With millions of identities the (C, D) class-centre matrix of ArcFace-style
losses, its optimizer state and the (N, C) logits no longer fit one GPU.
Partial FC (An et al., "Partial FC: Training 10 Million Identities on a
Single Machine", ICCVW 2021; insightface ``arcface_torch/partial_fc_v2.py``)
splits the centres across the ``world`` ranks of the process group:

1. every rank holds ``C / world`` centres (rank ``r`` the contiguous block
   :func:`shard_range` gives);
2. the embeddings and labels of all ranks are all-gathered, so each rank
   sees the whole global batch (N = world x local batch);
3. each rank computes the logits of the global batch against *its* centres
   only — an (N, C / world) block — with the (m1, m2, m3) margin of
   :func:`facebench_plugins.losses.margin.margin_target` on the target entry
   when that class lives on this rank;
4. a distributed softmax cross-entropy: the row maximum is all-reduced
   (MAX), the sum of exponentials and the target logit are all-reduced (SUM),
   so the loss is ``max + log(sum) - target`` of the global logits, without
   any rank ever holding them.

With ``sample_rate < 1`` each rank keeps the centres of the classes present
in the global batch (positives) plus random negatives up to
``sample_rate x C / world`` and computes logits against those only (the
paper's negative-centre sampling); the loss then approximates the full one.
With ``sample_rate = 1`` (the default) the loss and the gradients of the
embeddings and of the centres equal those of the unsharded
:class:`~facebench_plugins.losses.margin.MarginSoftmaxLoss` with the same
(s, m1, m2, m3) — tested with two gloo ranks.

Gradient convention (as insightface's): the gathered embeddings' gradient is
summed over ranks onto the rank that owns each sample and multiplied by
``world``, because DDP *averages* the backbone's gradients over ranks.  Under
DDP the backbone therefore gets exactly the unsharded gradient.  The centres
are not wrapped in DDP (each rank owns different ones): the optimizer updates
each shard locally, and the torch engine all-reduces their squared norms
when clipping gradients.

Without an initialised ``torch.distributed`` process group (or with one
rank) the module is an ordinary margin softmax over all C centres.

Its options live with the other losses' in :mod:`facebench_plugins.losses.options`;
torch is only imported when the loss is built (:func:`build_partial_fc`): the
torch classes live in :mod:`facebench_plugins.losses._partial_fc_torch`.
"""

from __future__ import annotations

from typing import Any

from facebench_plugins.losses.options import PartialFCOptions

__all__ = ["PartialFCOptions", "build_partial_fc", "shard_range", "PartialFC"]

#: Above this many centre elements the initial centres are drawn per shard
#: (seeded by rank) instead of drawing the full matrix and slicing it.
FULL_INIT_MAX_ELEMENTS = 1 << 26


def shard_range(num_classes: int, rank: int, world: int) -> tuple[int, int]:
    """``[start, stop)`` of the classes rank ``rank`` of ``world`` holds.

    Balanced contiguous blocks: the first ``num_classes % world`` ranks hold
    one class more than the others.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside world size {world}")
    base, extra = divmod(int(num_classes), int(world))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def build_partial_fc(opts: PartialFCOptions, *, embedding_size: int, num_classes: int):
    """Factory named by the ``partial_fc`` loss spec."""
    from facebench_plugins.losses._partial_fc_torch import PartialFC

    return PartialFC(
        embedding_size, num_classes, s=opts.s, m1=opts.m1, m2=opts.m2, m3=opts.m3,
        sample_rate=opts.sample_rate,
    )


def __getattr__(name: str) -> Any:  # PEP 562: `from ...partial_fc import PartialFC`
    if name in ("PartialFC", "AllGather", "DistributedCrossEntropy", "process_group_info"):
        from facebench_plugins.losses import _partial_fc_torch

        return getattr(_partial_fc_torch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
