"""Detection benchmark: WIDER FACE AP (easy / medium / hard, IoU 0.5) on the
images present, and speed (images/s, ms per image) at a stated size and
thread count.

The detector runs once per image; the three settings differ only in which
ground-truth faces count (the official keep-lists; the rest are ignored).
Each AP has a bootstrap interval over images (:mod:`harness.tasks._intervals`),
and ``sections.detection_gallery`` shows the images with the most missed and
false faces at the best-F1 threshold, the boxes drawn on them
(:func:`harness.tasks._gallery.detection_gallery`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics import Metric
from harness.tasks import _intervals
from harness.tasks._data import Skipped, readable_keys, skip_bad_wanted
from harness.tasks._faces import progress_iter
from harness.tasks._gallery import detection_gallery

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.tasks import TaskContext

__all__ = ["run"]

SETTINGS = ("easy", "medium", "hard")


def _downsample(x: np.ndarray, y: np.ndarray, n: int = 400) -> tuple[list, list]:
    if len(x) <= n:
        return x.tolist(), y.tolist()
    idx = np.unique(np.linspace(0, len(x) - 1, n).round().astype(int))
    return x[idx].tolist(), y[idx].tolist()


def _detect_all(det: Any, samples: list, loader: Any, progress: bool, name: str) -> tuple[dict, np.ndarray, list]:
    preds: dict[str, np.ndarray] = {}
    times = []
    sizes = []
    first = True
    for s in progress_iter(samples, f"detect ({name})", progress):
        img = loader(s.key)
        if first:  # warm-up: lazy weight loading and first-call allocations are not speed
            det.detect(img)
            first = False
        t0 = time.perf_counter()
        d = det.detect(img)
        times.append(time.perf_counter() - t0)
        sizes.append(img.shape[:2])
        preds[s.key] = np.column_stack([d.boxes, d.scores]) if len(d) else np.zeros((0, 5))
    return preds, np.asarray(times), sizes


def _wider(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", det: Any, name: str) -> dict:
    from harness.metrics.detection import wider_ap

    base_opts = dict(spec.options.get(ref.name, {}))
    sets = {}
    for setting in SETTINGS:
        opts = {**base_opts, "difficulty": setting}
        sets[setting] = ctx.registry.build("dataset", ref.name, opts, path=ref.path).detection()
    samples = list(sets["hard"].samples)
    if ctx.extra.get("max_images"):
        samples = samples[: int(ctx.extra["max_images"])]
    skipped = None
    if skip_bad_wanted(ctx, spec, ref):  # --skip-bad: unreadable images are left out, counted
        skipped = Skipped()
        ok = readable_keys(sets["hard"].loader, [s.key for s in samples], ref, skipped, ctx.progress)
        samples = [s for s, good in zip(samples, ok) if good]
    keys = {s.key for s in samples}
    preds, times, sizes = _detect_all(det, samples, sets["hard"].loader, ctx.progress, name)
    gt = {s.key: s.boxes for s in samples}
    metrics, ap, curves = [], {}, {}
    for setting in SETTINGS:
        keep = {s.key: ~np.asarray(s.ignore, bool) for s in sets[setting].samples if s.key in keys}
        try:
            value, precision, recall = wider_ap(preds, gt, keep)
        except ValueError as exc:  # e.g. a detector giving one constant score
            raise HarnessError(f"WIDER AP for {name} ({setting}): {exc}") from None
        ap[setting] = value
        r, p = _downsample(recall, precision)
        curves[setting] = {"recall": r, "precision": p}
        metrics.append(Metric(f"ap_{setting}", value, "higher",
                              convention=f"WIDER FACE {setting}: VOC AP at IoU 0.5, keep-list faces only").to_dict())
    keeps = {st: {s.key: ~np.asarray(s.ignore, bool) for s in sets[st].samples if s.key in keys} for st in SETTINGS}
    ci_statement = _intervals.detection(spec, metrics, preds, gt, keeps)
    ms = float(np.mean(times) * 1000)
    h, w = np.median(np.asarray(sizes), axis=0).astype(int).tolist()
    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())
    speed = {"images_per_s": round(1000 / ms, 2), "ms_per_image": round(ms, 2),
             "ms_p90": round(float(np.percentile(times, 90) * 1000), 2),
             "image_size": f"{w}x{h}", "threads": threads, "images": len(samples)}
    metrics.append(Metric("images_per_s", speed["images_per_s"], "higher",
                          convention=f"one image at a time, {w}x{h}, {threads} threads, after one warm-up").to_dict())
    n_faces = {st: int(sum((~np.asarray(s.ignore, bool)).sum() for s in sets[st].samples if s.key in keys))
               for st in SETTINGS}
    # medium keep-list: the faces a detector is expected to find (hard adds crowds of tiny ones)
    gallery = detection_gallery(preds, gt, keeps["medium"], sets["hard"].loader, setting="medium")
    return {
        "protocol": {"dataset": ref.name, "path": ref.path, "name": sets["hard"].protocol, "images": len(samples),
                     "faces_counted": n_faces, "iou": 0.5, "ap_rule": "WIDER FACE evaluation (VOC AP, 1000 "
                     "score thresholds, scores min-max normalised over the set)",
                     "detections": int(sum(len(p) for p in preds.values())),
                     **({"skipped_items": len(skipped.items)} if skipped is not None else {})},
        "metrics": metrics,
        "sections": {"detection": {"ap": ap, "speed": speed}, "intervals": ci_statement,
                     "detection_gallery": gallery,
                     **({"skipped": skipped.section()} if skipped is not None else {})},
        "curves": {"pr": curves},
    }


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    name = spec.components["detector"]
    det = ctx.registry.build("detector", name, spec.options.get(name))
    results = []
    for ref in spec.eval:
        dspec = ctx.registry.get("dataset", ref.name)
        if "detection" not in dspec.tasks:
            raise HarnessError(
                f"dataset {ref.name!r} has no detection ground truth; a detection run needs one such as "
                f"--eval wider=PATH (datasets with detection data: see `harness list dataset`)"
            )
        if ref.name == "wider":
            results.append(_wider(spec, ctx, ref, det, name))
        else:
            raise HarnessError(f"detection evaluation on {ref.name!r} is not supported yet; use wider")
    out = results[0]
    if len(results) > 1:  # with each one's interval statement
        out["sections"]["other_evals"] = [{"protocol": r["protocol"], "metrics": r["metrics"],
                                           "sections": {"intervals": r["sections"]["intervals"]}}
                                          for r in results[1:]]
    return out
