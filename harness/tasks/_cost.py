"""Compute beside accuracy: the model card of a recognition run.

Every recognizer or backbone evaluation records, in ``results.json`` under
``sections.model_card``:

* ``params`` and ``gflops``: the model's size for one forward pass of one
  image (2 FLOP per multiply-accumulate).  A torch model is counted by
  ``torch.utils.flop_counter`` on one image of the run's input size
  (:func:`torch_compute`: convolutions and matrix products, the convention of
  facebench's backbone profile and of the papers); a recognizer that states
  its own size (:class:`harness.types.CostReporting`, e.g. an ONNX graph
  counted from its nodes) says it; otherwise ``None`` with the reason.
  ``forward_passes_per_face`` is 2 under flip fusion (``gflops_per_face``
  counts both).
* ``embedding_size``: the width of the embedding as evaluated.
* measured speed on the run's device, warm, on the run's own crops
  (:func:`measure_speed`): ``ms_per_face_batch1`` (median of one-face calls)
  and ``img_per_s`` at ``throughput_batch`` (64 unless the time budget
  needs fewer), each a median of a few repeats after an untimed call, with
  the threads and the load average it ran beside.

Timing is bounded: ``FACEBENCH_COST`` holds the budget in seconds (default
5; at most 600) or ``0``/``off`` to skip the timing (sizes are still
recorded, they cost one forward pass).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.specs import RecognizerSpec

__all__ = [
    "COST_ENV",
    "DEFAULT_BUDGET_S",
    "attach_backbone",
    "attach_recognizer",
    "backbone_card",
    "budget_from_env",
    "measure_speed",
    "recognizer_card",
    "torch_compute",
]

#: environment variable: the timing budget in seconds, or 0/off to skip timing
COST_ENV = "FACEBENCH_COST"
DEFAULT_BUDGET_S = 5.0
_MAX_BUDGET_S = 600.0
#: timed repeats of each batch size (fewer when the budget runs out; at least one)
REPEATS = 5
THROUGHPUT_BATCH = 64

TORCH_METHOD = ("torch.utils.flop_counter on one image of the run's input size: convolutions and "
                "matrix products, 2 FLOP per multiply-accumulate; params = parameter elements")


def budget_from_env(environ: Mapping[str, str] | None = None) -> float | None:
    """The timing budget in seconds from ``FACEBENCH_COST``; ``None`` when timing is switched off.

    :raises ConfigError: a value that is neither off nor a number of seconds in (0, 600].
    """
    raw = (os.environ if environ is None else environ).get(COST_ENV, "").strip().lower()
    if raw == "":
        return DEFAULT_BUDGET_S
    if raw in ("0", "off", "no", "false"):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= _MAX_BUDGET_S:
        raise ConfigError(f"{COST_ENV}={raw[:40]!r}: expected seconds in (0, {_MAX_BUDGET_S:g}] "
                          "for timing the model, or 0/off to skip it")
    return value


# ------------------------------------------------------------------- speed
def _pool(crops: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """``n`` crops: the run's own, repeated when it has fewer."""
    return [crops[i % len(crops)] for i in range(n)]


def _timed(embed: Callable[[list], Any], batch: list, repeats: int, until: float,
           clock: Callable[[], float]) -> list[float]:
    """Seconds of ``repeats`` calls after one untimed call; stops early past ``until`` (one at least)."""
    embed(batch)
    times: list[float] = []
    while len(times) < repeats:
        t = clock()
        embed(batch)
        times.append(clock() - t)
        if clock() >= until:
            break
    return times


def measure_speed(embed: Callable[[list], Any], crops: Sequence[np.ndarray], *, budget_s: float,
                  repeats: int = REPEATS, batch: int = THROUGHPUT_BATCH,
                  clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Warm latency at batch 1 and throughput at ``batch`` of ``embed`` on ``crops``.

    About a third of ``budget_s`` goes to one-face calls; the throughput batch
    is ``batch`` when an untimed and a timed call of it fit the rest by the
    one-face estimate, else the largest power of two that does (stated).

    :returns: ``ms_per_face_batch1``, ``img_per_s``, ``throughput_batch``,
        the repeats of each and the seconds spent.
    """
    if len(crops) == 0:
        return {"skipped": "no crops to time"}
    start = clock()
    deadline = start + budget_s
    ones = _timed(embed, _pool(crops, 1), repeats, start + budget_s / 3, clock)
    per_face = statistics.median(ones)
    size = batch
    left = deadline - clock()
    while size > 1 and 2 * size * per_face > left:
        size //= 2
    out: dict[str, Any] = {"ms_per_face_batch1": 1000.0 * per_face, "repeats_batch1": len(ones)}
    if size > 1:
        many = _timed(embed, _pool(crops, size), repeats, deadline, clock)
        out.update(img_per_s=size / statistics.median(many), throughput_batch=size, repeats_batch=len(many))
    else:
        out.update(img_per_s=1.0 / per_face, throughput_batch=1, repeats_batch=len(ones))
    if size < batch:
        out["note"] = (f"throughput at batch {size}, not {batch}: one call of {batch} would take about "
                       f"{batch * per_face:.1f} s, past the {budget_s:g} s budget ({COST_ENV})")
    out["wall_s"] = round(clock() - start, 3)
    return out


def _threads() -> dict[str, Any]:
    return {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}


def _timing(embed: Callable[[list], Any], crops: Sequence[np.ndarray], budget_s: float | None) -> dict[str, Any]:
    if budget_s is None:
        return {"timing_skipped": f"{COST_ENV}=off"}
    before = os.getloadavg() if hasattr(os, "getloadavg") else None
    speed = measure_speed(embed, crops, budget_s=budget_s)
    speed["budget_s"] = budget_s
    speed["warm"] = "one untimed call of each batch size first; medians of the timed calls"
    speed["threads"] = _threads()
    if before is not None:
        speed["load_average"] = [round(v, 2) for v in before]
    return speed


# ----------------------------------------------------------------- compute
def torch_compute(model: Any, input_size: Sequence[int]) -> dict[str, Any]:
    """Params and FLOPs of one image of ``input_size`` (H, W) through a torch module.

    One forward pass of a zero image on the module's device in eval mode
    under ``torch.no_grad``, counted by ``torch.utils.flop_counter`` (the
    module's mode is restored).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = {id(p): p.numel() for p in model.parameters()}
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.zeros(1, 3, int(input_size[0]), int(input_size[1]), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return {"params": int(sum(params.values())), "flops": int(counter.get_total_flops()), "method": TORCH_METHOD}


def _size(compute: Mapping[str, Any], passes: int) -> dict[str, Any]:
    flops = compute.get("flops")
    out: dict[str, Any] = {
        "params": compute.get("params"),
        "gflops": None if flops is None else round(flops / 1e9, 4),
        "forward_passes_per_face": passes,
        "gflops_per_face": None if flops is None else round(passes * flops / 1e9, 4),
    }
    if compute.get("method"):
        out["compute_method"] = compute["method"]
    if flops is None:
        out["compute_na"] = str(compute.get("reason") or "the model does not state its size")
    return out


# ------------------------------------------------------------------- cards
def recognizer_card(rec: Any, rspec: "RecognizerSpec", crops: Sequence[np.ndarray], *,
                    budget_s: float | None) -> dict[str, Any]:
    """The model card of a pretrained recognizer on the run's crops (as ``embed`` takes them)."""
    from harness.types import CostReporting

    flip = getattr(rec, "flip", None)
    passes = 2 if flip in ("sum", "concat") else 1
    if isinstance(rec, CostReporting):
        compute = rec.compute()
    else:
        compute = {"reason": f"{rspec.name} does not state its size (harness.types.CostReporting)"}
    sample = rec.embed(_pool(crops, 1)) if len(crops) else None
    emb = int(sample.shape[1]) if sample is not None else getattr(rec, "embedding_size", rspec.embedding_size)
    described = rec.describe() if callable(getattr(rec, "describe", None)) else {}
    device = (", ".join(described.get("providers") or []) or described.get("device")
              or str(getattr(rec, "device", "") or "cpu"))
    return {"model": rspec.name, **_size(compute, passes), "embedding_size": emb, "device": device,
            **_timing(rec.embed, crops, budget_s)}


def backbone_card(engine: Any, model: Any, run_spec: Any, *, flip: str | None, device: str,
                  crops: Sequence[np.ndarray], budget_s: float | None) -> dict[str, Any]:
    """The model card of a torch backbone evaluated through ``engine`` on the run's crops."""
    def embed(batch: list) -> np.ndarray:
        return engine.embed(model, batch, backbone_spec=run_spec, flip=flip, batch_size=len(batch), device=device)

    passes = 2 if flip in ("sum", "concat") else 1
    sample = embed(_pool(crops, 1)) if len(crops) else None
    own = getattr(engine, "compute", None)  # an engine of another framework counts its own models (tf)
    compute = own(model, run_spec.input_size) if callable(own) else torch_compute(model, run_spec.input_size)
    first = next(model.parameters(), None) if hasattr(model, "parameters") else None
    emb = int(sample.shape[1]) if sample is not None else run_spec.embedding_size * (2 if flip == "concat" else 1)
    return {"model": run_spec.name, **_size(compute, passes), "embedding_size": emb,
            "device": str(first.device) if first is not None else device,
            **_timing(embed, crops, budget_s)}


# ------------------------------------------------------- the task's entry points
def _budget_or_reason() -> tuple[float | None, str]:
    """The budget, or None and why (a bad ``FACEBENCH_COST`` must not cost the run its accuracy)."""
    try:
        budget = budget_from_env()
    except ConfigError as exc:
        return None, f"{exc} (timing skipped)"
    return budget, "" if budget is not None else f"{COST_ENV}=off"


def _attach(res: dict, card: dict, manifest: dict, reason: str) -> None:
    if reason:
        card["timing_skipped"] = reason
    res.setdefault("sections", {})["model_card"] = card
    res["sections"]["manifest"] = manifest


def attach_recognizer(res: dict, rec: Any, rspec: "RecognizerSpec", crops: Sequence[np.ndarray], *,
                      template: str, input_size: Any, task_batch: int = THROUGHPUT_BATCH) -> None:
    """Write ``sections.model_card`` and ``sections.manifest`` of a recognizer run into ``res``."""
    from harness.tasks._manifest import recognizer_manifest

    budget, reason = _budget_or_reason()
    card = recognizer_card(rec, rspec, crops, budget_s=budget)
    manifest = recognizer_manifest(rec, rspec, template=template, input_size=input_size, task_batch=task_batch)
    _attach(res, card, manifest, reason)


def attach_backbone(res: dict, engine: Any, model: Any, run_spec: Any, crops: Sequence[np.ndarray], *,
                    flip: str | None, device: str, batch_size: int = THROUGHPUT_BATCH) -> None:
    """Write ``sections.model_card`` and ``sections.manifest`` of a backbone run into ``res``."""
    from harness.tasks._manifest import backbone_manifest

    budget, reason = _budget_or_reason()
    card = backbone_card(engine, model, run_spec, flip=flip, device=device, crops=crops, budget_s=budget)
    manifest = backbone_manifest(engine, model, run_spec, flip=flip, device=device, batch_size=batch_size)
    _attach(res, card, manifest, reason)
