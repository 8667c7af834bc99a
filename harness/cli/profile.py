"""``harness profile``: how big a training run is before it runs.

For a backbone + loss with C classes at batch N and a precision, prints the
parameters, the multiply-accumulates per image, the activation memory per
image, the weights + gradients + optimizer state, the classifier head, and
the totals for training and for inference.

How each number is found (torch is imported only inside the command):

* **params**: the built backbone's and loss's parameter elements; the
  weights line also holds the buffers (BatchNorm running statistics).
* **MACs**: ``torch.utils.flop_counter`` on one image (convolutions and
  matrix products, 2 FLOP per MAC; :func:`harness.tasks._cost.torch_compute`).
* **activations**: the bytes autograd *saves for backward*, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` over one training-mode forward
  of the backbone and of the loss at batch 4 and at batch 6, under the
  precision's autocast (unique storages; parameters excluded).  The
  difference is the cost of each further image; what does not grow with the
  batch (autocast's low-precision weight copies) is the fixed part.
* **training total**: the peak at the end of a forward pass from the second
  step on, when the previous step's gradients (the engine zeroes them after
  the forward) and the optimizer state are alive beside every saved
  activation: ``weights + grads + optimizer + fixed + N x per-image``.  On
  CUDA, torch's multi-tensor (foreach) optimizer step briefly holds one more
  copy of the gradients; the total is the larger of the two moments.
* **inference total**: the weights plus the peak of live activations of an
  inference forward (``no_grad``), measured on the CPU at batch 4 and 6 with
  the allocator events of ``torch.profiler`` and scaled linearly to N.

Not counted: the CUDA context, cuDNN workspaces and the caching allocator's
reserve -- ``nvidia-smi`` shows more than ``torch.cuda.max_memory_allocated``
(docs/scale.md).  ``--measure`` runs two real steps on the device and prints
the measured peak beside the estimate (CPU: ``torch.profiler`` allocator
events; CUDA: ``torch.cuda.max_memory_allocated``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import click

from harness.cli._params import ComponentName
from harness.errors import ConfigError

__all__ = ["MemoryEstimate", "command", "estimate", "measure_peak"]

PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = {"sgd": 1, "adamw": 2}  # fp32 state tensors per trainable parameter
_SMALL = (4, 6)  # the batches the per-image costs are counted at (a triplet loss needs 2 x 2)


@dataclass(frozen=True)
class MemoryEstimate:
    """Sizes of one backbone + loss configuration; bytes unless named otherwise.

    :param params_backbone / params_head: parameter elements (the head is the
        loss's class weights, C x D for a margin loss).
    :param macs_backbone / macs_head: multiply-accumulates of one image.
    :param weights / grads / optimizer: fp32 master weights (+ buffers),
        their gradients and the optimizer state, backbone and head together.
    :param head_static: the part of ``weights + grads + optimizer`` that is the head's.
    :param head_weights: the head's weights (not needed for inference).
    :param act_fixed: saved tensors that do not grow with the batch.
    :param act_backbone / act_head: saved for backward, per image.
    :param step_extra: what the optimizer step holds on top of the weights,
        gradients and state (one gradient copy for a CUDA foreach step, else 0).
    :param infer_fixed / infer_per_image: inference peak above the weights
        (the per-image part includes the fp32 input image).
    """

    backbone: str
    loss: str
    num_classes: int
    batch_size: int
    precision: str
    optimizer: str
    device: str
    input_size: tuple[int, int]
    embedding_size: int
    params_backbone: int
    params_head: int
    macs_backbone: int
    macs_head: int
    weights: int
    grads: int
    optimizer_state: int
    head_static: int
    head_weights: int
    act_fixed: int
    act_backbone: int
    act_head: int
    step_extra: int
    infer_fixed: int
    infer_per_image: int

    @property
    def static(self) -> int:
        return self.weights + self.grads + self.optimizer_state

    def activations(self, batch: int | None = None) -> int:
        n = self.batch_size if batch is None else batch
        return self.act_fixed + n * (self.act_backbone + self.act_head)

    def train_total(self, batch: int | None = None) -> int:
        return self.static + max(self.activations(batch), self.step_extra)

    def infer_total(self, batch: int | None = None) -> int:
        n = self.batch_size if batch is None else batch
        return self.weights - self.head_weights + self.infer_fixed + n * self.infer_per_image

    def largest_batch(self, budget: int) -> int:
        """The largest batch whose training total fits in ``budget`` bytes (0 if none)."""
        per = self.act_backbone + self.act_head
        room = budget - self.static - self.act_fixed
        n = int(room // per) if per > 0 and room > 0 else 0
        while n > 0 and self.train_total(n) > budget:
            n -= 1
        return n

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(static=self.static, activations=self.activations(), train_total=self.train_total(),
                   infer_total=self.infer_total())
        return out


# ------------------------------------------------------------------ building
def _autocast(torch: Any, device: str, precision: str):
    if precision == "fp32":
        return torch.autocast(device, enabled=False)
    return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _build_backbone(registry: Any, backbone: str, options: dict[str, dict[str, str]]):
    """(backbone module in training mode, input size, embedding size)."""
    spec = registry.get("backbone", backbone)
    model = registry.build("backbone", backbone, options.get(backbone))
    opts = spec.make_options(options.get(backbone))
    size = tuple(int(v) for v in (getattr(opts, "input_size", None) or spec.input_size))
    emb = int(getattr(model, "embedding_size", None) or getattr(opts, "embedding_size", None)
              or spec.embedding_size)
    model.train()
    return model, (size[0], size[1]), emb


def _build_head(registry: Any, loss: str, emb: int, num_classes: int, options: dict[str, dict[str, str]]):
    head = registry.build("loss", loss, options.get(loss), embedding_size=emb, num_classes=num_classes)
    head.train()
    return head


def _labels(torch: Any, batch: int, num_classes: int):
    """Labels in pairs (0, 0, 1, 1, ...): metric losses find positives."""
    return (torch.arange(batch) // 2) % num_classes


def _saved_bytes(torch: Any, model: Any, head: Any, batch: int, size: tuple[int, int], precision: str,
                 num_classes: int) -> tuple[int, int]:
    """Bytes saved for backward by the backbone's and the loss's forward at ``batch``."""
    params = {p.untyped_storage().data_ptr() for m in (model, head) for p in m.parameters()}
    seen: dict[int, int] = {}
    part = {"backbone": 0, "head": 0}
    where = ["backbone"]

    def pack(t):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in params and key not in seen:
            seen[key] = storage.nbytes()
            part[where[0]] += storage.nbytes()
        return t

    x = torch.randn(batch, 3, *size)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with _autocast(torch, "cpu", precision):
            emb = model(x)
        where[0] = "head"
        out = head(emb.float(), _labels(torch, batch, num_classes))
    del out, emb
    return part["backbone"], part["head"]


def _cpu_peak(torch: Any, fn) -> int:
    """Peak live bytes of the CPU allocator while ``fn()`` runs, above what
    was live before: ``torch.profiler`` allocator events summed in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for ev in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += ev.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def _infer_bytes(torch: Any, model: Any, batch: int, size: tuple[int, int], precision: str) -> int:
    x = torch.randn(batch, 3, *size)
    model.eval()
    try:
        def forward() -> None:
            with torch.no_grad(), _autocast(torch, "cpu", precision):
                model(x)
        return _cpu_peak(torch, forward)
    finally:
        model.train()


def _per_image(small: int, large: int) -> tuple[int, int]:
    """(fixed, per image) of a linear cost counted at the two batches of ``_SMALL``."""
    (a, b) = _SMALL
    per = max(0, (large - small) // (b - a))
    return max(0, small - a * per), per


def resolve_device(torch: Any, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def estimate(registry: Any, backbone: str, loss: str, *, num_classes: int, batch_size: int,
             precision: str = "fp32", optimizer: str = "sgd", device: str = "auto",
             options: dict[str, dict[str, str]] | None = None) -> MemoryEstimate:
    """The :class:`MemoryEstimate` of one configuration (see the module docstring)."""
    import torch

    from harness.tasks._cost import torch_compute

    _check(num_classes, batch_size, precision, optimizer)
    device = resolve_device(torch, device)
    torch.manual_seed(0)
    model, size, emb = _build_backbone(registry, backbone, options or {})
    head = _build_head(registry, loss, emb, num_classes, options or {})
    saved = [_saved_bytes(torch, model, head, n, size, precision, num_classes) for n in _SMALL]
    fixed_b, per_b = _per_image(saved[0][0], saved[1][0])
    fixed_h, per_h = _per_image(saved[0][1], saved[1][1])
    infer_fixed, infer_per = _per_image(*(_infer_bytes(torch, model, n, size, precision) for n in _SMALL))
    infer_per += 3 * size[0] * size[1] * 4  # the fp32 input batch itself
    compute = torch_compute(model, size)
    model.train()
    trainable = sum(p.numel() for m in (model, head) for p in m.parameters() if p.requires_grad)
    head_trainable = sum(p.numel() for p in head.parameters() if p.requires_grad)
    weights = sum(t.numel() * t.element_size() for m in (model, head)
                  for t in list(m.parameters()) + list(m.buffers()))
    per_state = OPTIMIZERS[optimizer]
    return MemoryEstimate(
        backbone=backbone, loss=loss, num_classes=num_classes, batch_size=batch_size, precision=precision,
        optimizer=optimizer, device=device, input_size=size, embedding_size=emb,
        params_backbone=sum(p.numel() for p in model.parameters()),
        params_head=sum(p.numel() for p in head.parameters()),
        macs_backbone=int(compute["flops"]) // 2, macs_head=head_trainable,
        weights=weights, grads=4 * trainable, optimizer_state=4 * per_state * trainable,
        head_static=4 * (2 + per_state) * head_trainable,
        head_weights=sum(t.numel() * t.element_size() for t in list(head.parameters()) + list(head.buffers())),
        act_fixed=fixed_b + fixed_h, act_backbone=per_b, act_head=per_h,
        step_extra=4 * trainable if device == "cuda" else 0,
        infer_fixed=infer_fixed, infer_per_image=infer_per,
    )


def _check(num_classes: int, batch_size: int, precision: str, optimizer: str) -> None:
    if num_classes < 2:
        raise ConfigError(f"--num-classes {num_classes}: a classifier needs at least 2 classes")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: expected a positive batch size")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer {optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")


# ----------------------------------------------------------------- measuring
def _train_steps(torch: Any, model: Any, head: Any, batch: int, size: tuple[int, int], precision: str,
                 optimizer: str, num_classes: int, device: str, steps: int = 2) -> None:
    """The engine's step (forward, zero_grad after it, backward, update), ``steps`` times."""
    params = [p for m in (model, head) for p in m.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4) if optimizer == "sgd"
           else torch.optim.AdamW(params, lr=1e-3))
    x = torch.randn(batch, 3, *size, device=device)
    y = _labels(torch, batch, num_classes).to(device)
    for _ in range(steps):
        with _autocast(torch, device, precision):
            emb = model(x)
        value = head(emb.float(), y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        del emb, value


def measure_peak(registry: Any, backbone: str, loss: str, *, num_classes: int, batch_size: int,
                 precision: str = "fp32", optimizer: str = "sgd", device: str = "auto", mode: str = "train",
                 options: dict[str, dict[str, str]] | None = None) -> int:
    """The measured peak bytes of building the model and running two training
    steps (``mode="train"``) or one inference batch (``"infer"``) on ``device``."""
    import torch

    device = resolve_device(torch, device)

    def work() -> None:
        torch.manual_seed(0)
        model, size, emb = _build_backbone(registry, backbone, options or {})
        model.to(device)
        if mode == "train":
            head = _build_head(registry, loss, emb, num_classes, options or {}).to(device)
            _train_steps(torch, model, head, batch_size, size, precision, optimizer, num_classes, device)
            return
        model.eval()
        with torch.no_grad(), _autocast(torch, device, precision):
            model(torch.randn(batch_size, 3, *size, device=device))

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        work()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - base)
    return _cpu_peak(torch, work)


# ------------------------------------------------------------------- output
def _b(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(int(n))


def render(e: MemoryEstimate) -> str:
    state = {"sgd": "SGD momentum", "adamw": "AdamW (2 moments)"}[e.optimizer]
    head_share = e.head_static
    lines = [
        f"{e.backbone} + {e.loss}, {e.num_classes:,} classes, batch {e.batch_size}, {e.precision}, "
        f"{e.optimizer} optimizer, device {e.device}, input {e.input_size[0]}x{e.input_size[1]}, "
        f"embedding {e.embedding_size}",
        f"params          backbone {_count(e.params_backbone)}, head {_count(e.params_head)}",
        f"MACs / image    backbone {_count(e.macs_backbone)}, head {_count(e.macs_head)}",
        f"activations / image (saved for backward, {e.precision}): backbone {_b(e.act_backbone)}, "
        f"head {_b(e.act_head)}; fixed {_b(e.act_fixed)}",
        f"weights {_b(e.weights)} + gradients {_b(e.grads)} + optimizer state ({state}) "
        f"{_b(e.optimizer_state)} = {_b(e.static)}",
        f"  of which the classifier head {_b(head_share)}",
        f"training total  {_b(e.train_total())}  = {_b(e.static)} + activations "
        f"{e.batch_size} x {_b(e.act_backbone + e.act_head)} + {_b(e.act_fixed)}"
        + (f"; the foreach optimizer step's gradient copy ({_b(e.step_extra)}) counts instead when larger"
           if e.step_extra else ""),
        f"inference total {_b(e.infer_total())}  = weights + {e.batch_size} x {_b(e.infer_per_image)}"
        f" + {_b(e.infer_fixed)}",
        "not counted: CUDA context, cuDNN workspaces, the caching allocator's reserve",
    ]
    return "\n".join(lines)


def _parse_memory(text: str | None) -> int | None:
    if text is None:
        return None
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"G": 2**30, "M": 2**20}.get(t[-1:], None)
    try:
        value = float(t[:-1] if scale else t)
    except ValueError:
        raise ConfigError(f"--memory {text!r}: expected a size such as 22GB or 22GiB") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--memory {text!r}: expected a positive size")
    return int(value * (scale or 2**30))


@click.command("profile")
@click.option("--backbone", required=True, type=ComponentName("backbone"), help="Backbone to size.")
@click.option("--loss", required=True, type=ComponentName("loss"), help="Loss (its class weights are the head).")
@click.option("--num-classes", required=True, type=int, metavar="C", help="Identities in the training set.")
@click.option("--batch-size", required=True, type=int, metavar="N", help="Images per step (per device).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp32, or bf16 / fp16 autocast (weights stay fp32).")
@click.option("--optimizer", type=click.Choice(sorted(OPTIMIZERS)), default="sgd", show_default=True,
              help="sgd (one momentum buffer) or adamw (two moments).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the step would run (cuda adds the foreach optimizer step's gradient copy).")
@click.option("-o", "--option", "options", multiple=True, metavar="COMPONENT.KEY=VALUE",
              help="A component option, e.g. -o lresnet50.input_size=96 (repeatable).")
@click.option("--memory", default=None, metavar="SIZE", help="Also print the largest batch fitting SIZE (e.g. 22GB).")
@click.option("--measure", is_flag=True, help="Run two real steps on the device and print the measured peak.")
@click.option("--json", "as_json", is_flag=True, help="Print the estimate as JSON.")
def command(backbone: str, loss: str, num_classes: int, batch_size: int, precision: str, optimizer: str,
            device: str, options: tuple[str, ...], memory: str | None, measure: bool, as_json: bool) -> None:
    """Estimate params, MACs and training / inference memory of a backbone + loss.

    \b
    Examples:
      harness profile --backbone lresnet50 --loss arcface --num-classes 85742 --batch-size 32
      harness profile --backbone mobilefacenet --loss arcface --num-classes 10575 --batch-size 128 \\
          --precision bf16 --memory 22GB
      harness profile --backbone resnet20 --loss softmax --num-classes 40 --batch-size 16 --measure
    """
    from harness.config import parse_option_flags
    from harness.registry import get_registry

    budget = _parse_memory(memory)
    opts = parse_option_flags(options)
    reg = get_registry()
    est = estimate(reg, backbone, loss, num_classes=num_classes, batch_size=batch_size, precision=precision,
                   optimizer=optimizer, device=device, options=opts)
    out = est.to_dict()
    if budget is not None:
        out["memory_budget"], out["largest_batch"] = budget, est.largest_batch(budget)
    if measure:
        for mode in ("train", "infer"):
            out[f"measured_{mode}_peak"] = measure_peak(reg, backbone, loss, num_classes=num_classes,
                                                        batch_size=batch_size, precision=precision,
                                                        optimizer=optimizer, device=est.device, mode=mode,
                                                        options=opts)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(render(est))
    if budget is not None:
        click.echo(f"largest batch within {_b(budget)}: {out['largest_batch']} (training total)")
    if measure:
        for mode, total in (("train", est.train_total()), ("infer", est.infer_total())):
            m = out[f"measured_{mode}_peak"]
            click.echo(f"measured {'training' if mode == 'train' else 'inference'} peak on {est.device}: "
                       f"{_b(m)} (estimate / measured = {total / m:.3f})")
