"""The torch side of :mod:`facebench_plugins.losses.partial_fc` (see its
docs): the sharded margin softmax and the two autograd functions it needs.
Imported only when the loss is built, so the spec import stays torch-free.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from facebench_plugins.losses._common import check_classes, check_inputs, full_precision
from facebench_plugins.losses.margin import margin_target
from facebench_plugins.losses.partial_fc import FULL_INIT_MAX_ELEMENTS, shard_range

__all__ = ["AllGather", "DistributedCrossEntropy", "PartialFC", "process_group_info"]


def process_group_info() -> tuple[int, int]:
    """(rank, world) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class AllGather(torch.autograd.Function):
    """Concatenate every rank's (n, ...) tensor into (world * n, ...).

    Backward: the gradient of the whole concatenation is summed over the
    ranks (all-reduce; gloo has no reduce-scatter), this rank's slice is
    kept and multiplied by ``world`` to cancel DDP's averaging (see the
    module docs).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.world, ctx.n = dist.get_rank(), world, x.shape[0]
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        mine = grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]
        return mine * ctx.world


def gather_labels(labels: torch.Tensor, world: int) -> torch.Tensor:
    parts = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(parts, labels.contiguous())
    return torch.cat(parts, 0)


class DistributedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of logits split column-wise across ranks.

    ``logits``: this rank's (N, C_r) block; ``target``: (N,) the target's
    column in this block, or -1 when the target lives on another rank.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, distributed: bool):  # type: ignore[override]
        n = logits.shape[0]
        row_max = logits.detach().max(dim=1, keepdim=True).values
        if distributed:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX)
        exp = torch.exp(logits.detach() - row_max)
        total = exp.sum(dim=1, keepdim=True)
        hit = target >= 0
        rows = torch.nonzero(hit).view(-1)
        tgt_logit = torch.zeros(n, 1, dtype=logits.dtype, device=logits.device)
        tgt_logit[rows] = logits.detach()[rows, target[rows]].view(-1, 1)
        if distributed:
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            dist.all_reduce(tgt_logit, op=dist.ReduceOp.SUM)
        prob = exp.div_(total)
        ctx.save_for_backward(prob, target)
        loss = row_max + torch.log(total) - tgt_logit
        return loss.mean()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        prob, target = ctx.saved_tensors
        grad = prob.clone()
        rows = torch.nonzero(target >= 0).view(-1)
        grad[rows, target[rows]] -= 1.0
        grad.mul_(grad_out / prob.shape[0])
        return grad, None, None


class PartialFC(nn.Module):
    """Margin softmax with the (C, D) centres split across ranks.

    :param embedding_size: D.
    :param num_classes: C, the global number of classes.
    :param s, m1, m2, m3: the combined margin (ArcFace: m2 = 0.5).
    :param sample_rate: negative-centre sampling (1.0: off, exact).

    ``sharded`` tells the torch engine not to wrap this module in DDP;
    ``shard`` is ``(start, stop)`` of the classes this rank holds.
    """

    sharded = True

    def __init__(self, embedding_size: int, num_classes: int, *, s: float = 64.0, m1: float = 1.0,
                 m2: float = 0.5, m3: float = 0.0, sample_rate: float = 1.0,
                 name: str = "partial_fc") -> None:
        super().__init__()
        check_classes(name, num_classes)
        self.name = name
        self.embedding_size = int(embedding_size)
        self.num_classes = int(num_classes)
        self.s, self.m1, self.m2, self.m3 = float(s), float(m1), float(m2), float(m3)
        self.sample_rate = float(sample_rate)
        self.rank, self.world = process_group_info()
        if self.world > self.num_classes:
            raise check_classes_error(name, num_classes, self.world)
        self.shard = shard_range(self.num_classes, self.rank, self.world)
        start, stop = self.shard
        if self.num_classes * self.embedding_size <= FULL_INIT_MAX_ELEMENTS:
            # The same draws as MarginSoftmaxLoss: with the same seed the
            # shards concatenate to the unsharded initial centres.
            full = torch.empty(self.num_classes, self.embedding_size)
            nn.init.normal_(full, 0.0, 0.01)
            weight = full[start:stop].clone()
        else:
            gen = torch.Generator().manual_seed((torch.initial_seed() + 7919 * self.rank) & 0x7FFFFFFF)
            weight = torch.empty(stop - start, self.embedding_size).normal_(0.0, 0.01, generator=gen)
        self.weight = nn.Parameter(weight)

    def extra_repr(self) -> str:
        return (f"{self.name}: D={self.embedding_size}, C={self.num_classes} "
                f"(rank {self.rank}/{self.world} holds [{self.shard[0]}, {self.shard[1]})), "
                f"s={self.s}, m1={self.m1}, m2={self.m2}, m3={self.m3}, sample_rate={self.sample_rate}")

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def _gather(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.distributed:
            return embeddings, labels
        return AllGather.apply(embeddings), gather_labels(labels, self.world)

    def _select(self, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Centre rows to use and each label's column among them (-1: another rank's)."""
        start, stop = self.shard
        local = labels - start
        mine = (labels >= start) & (labels < stop)
        n_local = stop - start
        if self.sample_rate >= 1.0:
            return None, torch.where(mine, local, torch.full_like(local, -1))
        positives = torch.unique(local[mine])
        n_sample = max(int(self.sample_rate * n_local), int(positives.numel()))
        if n_sample >= n_local:
            return None, torch.where(mine, local, torch.full_like(local, -1))
        score = torch.rand(n_local, device=labels.device)
        score[positives] = 2.0
        index = torch.topk(score, n_sample).indices.sort().values
        column = torch.searchsorted(index, local.clamp(0, n_local - 1))
        return index, torch.where(mine, column, torch.full_like(local, -1))

    def cosine(self, embeddings: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Cosines between (gathered) embeddings and this rank's (selected) centres."""
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            x = F.normalize(full_precision(embeddings), dim=1)
            w = self.weight if index is None else self.weight[index]
            w = F.normalize(full_precision(w).to(x.dtype), dim=1)
            return F.linear(x, w).clamp(-1.0, 1.0)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(self.name, embeddings, labels, embedding_size=self.embedding_size,
                     num_classes=self.num_classes)
        x, y = self._gather(embeddings, labels.long())
        index, target = self._select(y)
        cos = self.cosine(x, index)
        rows = torch.nonzero(target >= 0).view(-1)
        if rows.numel():
            cols = target[rows]
            psi = margin_target(cos[rows, cols], self.m1, self.m2, self.m3)
            cos = cos.index_put((rows, cols), psi)
        return DistributedCrossEntropy.apply(self.s * cos, target, self.distributed)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Margin-free ``s * cos`` (N, C) of these embeddings against *all* centres;
        ``labels`` is ignored.  Distributed, the shards' columns are
        all-gathered (a collective, and (N, C) memory: for accuracy on a
        batch use :meth:`batch_accuracy`)."""
        if not self.distributed:
            return self.s * self.cosine(embeddings)
        n = embeddings.shape[0]
        local = self.s * self.cosine(AllGather.apply(embeddings))  # (world * n, C_r)
        width = max(b - a for a, b in (shard_range(self.num_classes, r, self.world)
                                      for r in range(self.world)))
        padded = F.pad(local, (0, width - local.shape[1])).contiguous()
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        sizes = [b - a for a, b in (shard_range(self.num_classes, r, self.world) for r in range(self.world))]
        full = torch.cat([p[:, :k] for p, k in zip(parts, sizes)], dim=1)
        return full[self.rank * n:(self.rank + 1) * n]

    @torch.no_grad()
    def batch_accuracy(self, embeddings: torch.Tensor, labels: torch.Tensor) -> float:
        """Top-1 accuracy of the margin-free logits over the global batch
        (a collective: every rank must call it)."""
        x, y = self._gather(embeddings.detach(), labels.long())
        best, arg = self.cosine(x).max(dim=1)
        arg = arg + self.shard[0]
        if self.distributed:
            bests = [torch.empty_like(best) for _ in range(self.world)]
            args = [torch.empty_like(arg) for _ in range(self.world)]
            dist.all_gather(bests, best)
            dist.all_gather(args, arg)
            which = torch.stack(bests, 1).argmax(1, keepdim=True)
            arg = torch.stack(args, 1).gather(1, which).view(-1)
        return float((arg == y).float().mean())


def check_classes_error(name: str, num_classes: int, world: int):
    from harness.errors import ConfigError

    return ConfigError(
        f"{name}: {num_classes} classes cannot be split across {world} ranks "
        "(each rank needs at least one centre); use fewer processes or an unsharded loss"
    )
