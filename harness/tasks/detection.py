"""Detection benchmark: each evaluation set is scored by the protocol its dataset names
(:class:`harness.types.ScoredDetectionData`, ``detection_protocol``), never by the dataset's
name, so a third-party detection dataset needs no change here (:data:`PROTOCOLS`):

* ``wider``: WIDER FACE AP (easy / medium / hard, IoU 0.5) on the images present.  The
  detector runs once per image; the three settings differ only in which ground-truth faces
  count (the official keep-lists; the rest are ignored).  Each AP has a bootstrap interval
  over images (:mod:`harness.tasks._intervals`).
* ``fddb``: the FDDB discrete ROC and its true-positive rate at 100 / 500 / 1000 false
  positives, each with a bootstrap interval over images (:mod:`harness.tasks._fddb`).

Both report speed (images/s, ms per image) at a stated size and thread count, and
``sections.detection_gallery`` shows the images with the most missed and false faces at the
best-F1 threshold, the boxes drawn on them (:func:`harness.tasks._gallery.detection_gallery`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from harness.errors import DataError, HarnessError
from harness.metrics import Metric
from harness.tasks import _fddb, _intervals
from harness.tasks._data import Skipped, readable_keys, skip_bad_wanted
from harness.tasks._faces import progress_iter
from harness.tasks._gallery import detection_gallery
from harness.types import ScoredDetectionData

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.tasks import TaskContext

__all__ = ["PROTOCOLS", "run"]

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


def _speed(times: np.ndarray, sizes: list, images: int) -> tuple[dict, dict]:
    """The ``speed`` section and the ``images_per_s`` metric record."""
    ms = float(np.mean(times) * 1000)
    h, w = np.median(np.asarray(sizes), axis=0).astype(int).tolist()
    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())
    speed = {"images_per_s": round(1000 / ms, 2), "ms_per_image": round(ms, 2),
             "ms_p90": round(float(np.percentile(times, 90) * 1000), 2),
             "image_size": f"{w}x{h}", "threads": threads, "images": images}
    metric = Metric("images_per_s", speed["images_per_s"], "higher",
                    convention=f"one image at a time, {w}x{h}, {threads} threads, after one warm-up").to_dict()
    return speed, metric


def _readable(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", samples: list, loader: Any) -> tuple[list, Any]:
    """The samples whose image decodes under ``--skip-bad`` (the others counted), else all."""
    if not skip_bad_wanted(ctx, spec, ref):
        return samples, None
    skipped = Skipped()
    ok = readable_keys(loader, [s.key for s in samples], ref, skipped, ctx.progress)
    return [s for s, good in zip(samples, ok) if good], skipped


def _wider(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", ds: Any, det: Any, name: str) -> dict:
    from harness.metrics.detection import wider_ap

    base_opts = dict(spec.options.get(ref.name, {}))
    sets = {}
    for setting in SETTINGS:
        opts = {**base_opts, "difficulty": setting}
        sets[setting] = ctx.registry.build("dataset", ref.name, opts, path=ref.path).detection()
    samples = list(sets["hard"].samples)
    if ctx.extra.get("max_images"):
        samples = samples[: int(ctx.extra["max_images"])]
    samples, skipped = _readable(spec, ctx, ref, samples, sets["hard"].loader)  # --skip-bad: left out, counted
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
    speed, speed_metric = _speed(times, sizes, len(samples))
    metrics.append(speed_metric)
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


def _ellipses(ref: "DataRef", samples: list) -> dict[str, np.ndarray]:
    """Image key -> (M, 5) ground-truth ellipses of each sample (``info["ellipses"]``)."""
    out = {}
    for s in samples:
        e = s.info.get("ellipses") if isinstance(s.info, dict) else None
        if e is None:
            raise DataError(f"dataset {ref.name!r}: image {str(s.key)[:80]!r} has no info['ellipses']; the fddb "
                            "protocol needs each sample's (M, 5) ellipses (major radius, minor radius, angle, cx, cy)")
        out[s.key] = np.asarray(e, np.float64).reshape(-1, 5)
    return out


def _fddb_roc(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", ds: Any, det: Any, name: str) -> dict:
    """The FDDB discrete ROC over the dataset's images (:mod:`harness.tasks._fddb` states the rule)."""
    dset = ds.detection()
    samples = list(dset.samples)
    if ctx.extra.get("max_images"):
        samples = samples[: int(ctx.extra["max_images"])]
    samples, skipped = _readable(spec, ctx, ref, samples, dset.loader)
    if not samples:
        why = f"; e.g. {skipped.items[0]['reason']}" if skipped is not None and skipped.items else ""
        raise DataError(f"dataset {ref.name!r}: no readable image left to evaluate of {len(dset.samples)} "
                        f"listed{why}")
    ellipses = _ellipses(ref, samples)
    preds, times, sizes = _detect_all(det, samples, dset.loader, ctx.progress, name)
    events = _fddb.image_events(preds, ellipses)
    roc = _fddb.roc(events)
    names = {n: f"fddb_tpr_at_fp_{n}" for n in _fddb.FP_POINTS}
    metrics = [Metric(names[n], roc.tpr_at_fp(n), "higher",
                      convention=f"FDDB discrete ROC: true positives (overlap > {_fddb.OVERLAP} with an ellipse, "
                                 f"one-to-one) / faces at <= {n} false positives").to_dict() for n in names]
    ci_statement = _fddb.intervals(spec, metrics, events, names)
    speed, speed_metric = _speed(times, sizes, len(samples))
    metrics.append(speed_metric)
    gt = {s.key: np.asarray(s.boxes, np.float64).reshape(-1, 4) for s in samples}
    gallery = detection_gallery(preds, gt, {k: np.ones(len(b), bool) for k, b in gt.items()}, dset.loader,
                                setting="every face's")
    gallery["rule"] = ("score threshold of best F1 over the set, detections matched to each ellipse's bounding "
                       "box at IoU 0.5 (WIDER matching); the ROC scores the ellipse regions")
    fx, fy = _downsample(roc.false_positives.astype(np.float64), roc.tpr)
    return {
        "protocol": {"dataset": ref.name, "path": ref.path, "name": dset.protocol, "images": len(samples),
                     "faces_counted": roc.n_faces, "overlap": f"> {_fddb.OVERLAP}", "roc_rule": _fddb.RULE,
                     "detections": int(sum(len(p) for p in preds.values())),
                     **({"skipped_items": len(skipped.items)} if skipped is not None else {})},
        "metrics": metrics,
        "sections": {"detection": {"speed": speed}, "intervals": ci_statement, "detection_gallery": gallery,
                     **({"skipped": skipped.section()} if skipped is not None else {})},
        "curves": {"fddb_roc": {"false_positives": fx, "tpr": fy}},
    }


#: ``detection_protocol`` (:class:`harness.types.ScoredDetectionData`) -> its evaluation
PROTOCOLS: dict[str, Callable[..., dict]] = {"fddb": _fddb_roc, "wider": _wider}


def _open(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef") -> tuple[Callable[..., dict], Any]:
    """The evaluation the dataset ``ref`` names, and the dataset built with the run's options."""
    dspec = ctx.registry.get("dataset", ref.name)
    if "detection" not in dspec.tasks:
        raise HarnessError(
            f"dataset {ref.name!r} has no detection ground truth; a detection run needs one such as "
            f"--eval wider=PATH (datasets with detection data: see `harness list dataset`)"
        )
    ds = ctx.registry.build("dataset", ref.name, dict(spec.options.get(ref.name, {})), path=ref.path)
    known = ", ".join(sorted(PROTOCOLS))
    if not isinstance(ds, ScoredDetectionData):
        raise HarnessError(f"dataset {ref.name!r} does not say how its detection ground truth is scored; its built "
                           f"object needs detection_protocol = one of {known} (harness.types.ScoredDetectionData)")
    protocol = ds.detection_protocol
    if not isinstance(protocol, str) or protocol not in PROTOCOLS:
        raise HarnessError(f"dataset {ref.name!r} names detection protocol {str(protocol)[:40]!r}; expected one of "
                           f"{known} (harness.types.ScoredDetectionData)")
    return PROTOCOLS[protocol], ds


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    opened = [(ref, *_open(spec, ctx, ref)) for ref in spec.eval]  # every set checked before the detector is built
    name = spec.components["detector"]
    det = ctx.registry.build("detector", name, spec.options.get(name))
    results = [evaluate(spec, ctx, ref, ds, det, name) for ref, evaluate, ds in opened]
    out = results[0]
    if len(results) > 1:  # with each one's interval statement
        out["sections"]["other_evals"] = [{"protocol": r["protocol"], "metrics": r["metrics"],
                                           "sections": {"intervals": r["sections"]["intervals"]}}
                                          for r in results[1:]]
    return out
