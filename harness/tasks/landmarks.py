"""Landmark benchmark: NME (three normalisers), CED, AUC@0.08 and failure rates.

Protocol (stated in every result):

* faces: each annotated face's **ground-truth box** (the dataset states how it
  was made, e.g. AFLW2000-3D: the tight box of the 68 points) is given to the
  landmarker — no detector, so detection misses do not enter the numbers;
* points compared: every point when the landmarker predicts the annotation's
  scheme; the common five (eye centres, nose tip, mouth corners) whenever both
  schemes have them; else the semantic points both share (dlib's 5 points: the
  eye corners and the base of the nose) — see ``harness.metrics.landmarks``;
* NME is the mean point error over those points divided by the ground truth's
  inter-ocular distance (outer eye corners, 300-W; the default), inter-pupil
  distance, or sqrt(w*h) of the box; the mean is over faces with a prediction;
* a face the landmarker gives no points for (NaN, e.g. a detector finding no
  face in the crop) counts as a failure at every threshold and is counted.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError
from harness.metrics import Metric
from harness.metrics import landmarks as L
from harness.tasks import _intervals
from harness.tasks._data import open_dataset
from harness.tasks._faces import progress_iter

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.tasks import TaskContext

__all__ = ["DEFAULT_NORMALISER", "FULL_SIZES", "run"]

DEFAULT_NORMALISER = "inter_ocular"
THRESHOLDS = (0.08, 0.10)
AUC_THRESHOLD = 0.08
#: faces in the full benchmark of a dataset, where it is one fixed set (for the "sample" note)
FULL_SIZES = {"aflw2000": ("AFLW2000-3D", 2000)}
#: below this many faces a result is called a sample, whatever the dataset
SMALL_SET = 100
YAW_BINS = ((0, 30), (30, 60), (60, 90.1))


def _predict_all(lm: Any, data: Any, samples: list, progress: bool, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, 2) predictions (NaN rows: no prediction) and per-face seconds."""
    preds, times = [], []
    for k, s in enumerate(progress_iter(samples, f"landmarks ({name})", progress)):
        img = data.loader(s.key)
        if k == 0:  # warm-up: lazy loading and first-call allocations are not speed
            lm.predict(img, s.box[None])
        t0 = time.perf_counter()
        p = np.asarray(lm.predict(img, s.box[None]), np.float64)
        times.append(time.perf_counter() - t0)
        preds.append(p.reshape(-1, 2))
    return np.stack(preds), np.asarray(times)


def _point_sets(pred_scheme: str, gt_scheme: str) -> dict[str, str]:
    """label -> what is compared, for each point set (the first is the headline)."""
    out: dict[str, str] = {}
    p, g = L.get_scheme(pred_scheme), L.get_scheme(gt_scheme)
    if all(n in p.points and n in g.points for n in L.COMMON_FIVE):
        out["5pt"] = "the common five: " + ", ".join(L.COMMON_FIVE)
    if pred_scheme == gt_scheme:
        out[f"{g.num_points}pt"] = f"all {g.num_points} points of {gt_scheme}"
    if not out:
        shared = L.compared_points(pred_scheme, gt_scheme) or ()
        out["shared"] = "the points both schemes share: " + ", ".join(shared)
    return out


def _errors(preds: np.ndarray, gts: np.ndarray, boxes: np.ndarray, pred_scheme: str, gt_scheme: str,
            label: str, kind: str) -> np.ndarray:
    """(N,) per-face NME for one point set and normaliser; +inf where there is no prediction."""
    found = np.isfinite(preds).all(axis=(1, 2))
    err = np.full(len(preds), np.inf)
    if found.any():
        if label == "5pt":
            p = L.get_scheme(pred_scheme).semantic(preds[found], L.COMMON_FIVE)
            g = L.get_scheme(gt_scheme).semantic(gts[found], L.COMMON_FIVE)
            d = L.normaliser(gts[found], gt_scheme, kind, boxes[found])
            err[found] = np.linalg.norm(p - g, axis=-1).mean(axis=1) / d
        else:
            err[found] = L.per_face_nme(preds[found], gts[found], pred_scheme, gt_scheme, kind, boxes[found])
    return err


def _normalisers(gt_scheme: str) -> list[str]:
    s = L.get_scheme(gt_scheme)
    pairs = {"inter_ocular": ("left_eye_outer", "right_eye_outer"),
             "inter_pupil": ("left_eye_centre", "right_eye_centre")}
    return [k for k in L.NORMALISERS if k not in pairs or all(n in s.points for n in pairs[k])]


def _sample_note(ref: "DataRef", n: int) -> str:
    full = FULL_SIZES.get(ref.name)
    if full and n < full[1]:
        return (f"a sample of {n} images, not the full {full[0]} benchmark ({full[1]:,} images): "
                "these numbers are a smoke test, not comparable with published results")
    if n < SMALL_SET:
        return f"a small sample ({n} faces), not a full benchmark: not comparable with published results"
    return f"{n} faces"


def _yaw_table(samples: list, err: np.ndarray) -> list[dict[str, Any]]:
    yaw = np.array([abs(s.info.get("yaw_degrees")) if s.info.get("yaw_degrees") is not None else np.nan
                    for s in samples])
    if np.isnan(yaw).all():
        return []
    rows = []
    for lo, hi in YAW_BINS:
        sel = (yaw >= lo) & (yaw < hi)
        finite = err[sel][np.isfinite(err[sel])]
        rows.append({"yaw": f"[{lo}, {min(hi, 90):g}]", "faces": int(sel.sum()),
                     "nme": float(finite.mean()) if len(finite) else None})
    return rows


def _metrics_for(label: str, err: np.ndarray, kind: str, headline: bool) -> list[dict]:
    finite = err[np.isfinite(err)]
    conv = f"mean over faces with a prediction; {L.NORMALISERS[kind]}"
    out = [Metric(f"nme_{label}_{kind}", float(finite.mean()) if len(finite) else None, "lower",
                  convention=conv, meta={"faces": int(len(finite)), **({"headline": True} if headline else {})}
                  ).to_dict()]
    if headline:
        out.append(Metric(f"auc_{label}_at_{AUC_THRESHOLD:.2f}", L.auc_at(err, AUC_THRESHOLD), "higher",
                          convention=f"area under the CED ({kind}) on [0, {AUC_THRESHOLD}] / {AUC_THRESHOLD}; "
                                     "faces without a prediction count as failures").to_dict())
        out += [Metric(f"failure_rate_{label}_at_{t:.2f}", L.failure_rate(err, t), "lower",
                       convention=f"fraction of faces with NME ({kind}) > {t}; no prediction counts").to_dict()
                for t in THRESHOLDS]
    return out


def _evaluate(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", lm: Any, lspec: Any) -> dict:
    data = open_dataset(ctx, spec, ref).landmarks()
    samples = list(data.samples)
    if ctx.extra.get("max_images"):
        samples = samples[: int(ctx.extra["max_images"])]
    preds, times = _predict_all(lm, data, samples, ctx.progress, lspec.name)
    if preds.shape[1:] != (lspec.num_points, 2):
        raise HarnessError(f"landmarker {lspec.name!r} returned {preds.shape[1]} points per face; its spec "
                           f"declares {lspec.num_points}")
    gts = np.stack([s.points for s in samples])
    boxes = np.stack([s.box for s in samples])
    sets = _point_sets(lspec.scheme, data.scheme)
    kinds = _normalisers(data.scheme)
    metrics, table, ced, yaw, errs = [], {}, {}, [], []
    for label in sets:
        table[label] = {}
        for kind in kinds:
            err = _errors(preds, gts, boxes, lspec.scheme, data.scheme, label, kind)
            errs.append((label, kind, err, kind == kinds[0]))  # for the intervals (harness/tasks/_intervals.py)
            table[label][kind] = {**L.summary(err, THRESHOLDS, AUC_THRESHOLD), "missed": int(np.isinf(err).sum())}
            metrics += _metrics_for(label, err, kind, headline=kind == kinds[0])
            if kind == kinds[0]:
                x, y = L.ced_curve(err, max_error=0.2, steps=201)
                ced[label] = {"x": x.tolist(), "y": y.tolist(), "normaliser": kind}
                yaw = yaw or _yaw_table(samples, err)
    ms = float(np.mean(times) * 1000)
    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())
    missed = int((~np.isfinite(preds).all(axis=(1, 2))).sum())
    note = _sample_note(ref, len(samples))
    section = {"sample": note, "landmarker_scheme": lspec.scheme, "annotation_scheme": data.scheme,
               "point_sets": sets, "normaliser": kinds[0], "table": table,
               "missed": missed, "speed": {"ms_per_face": round(ms, 2), "threads": threads, "faces": len(samples)}}
    if yaw:
        section["by_yaw"] = yaw
    return {
        "protocol": {"dataset": ref.name, "path": ref.path, "name": data.protocol, "faces": len(samples),
                     "sample": note, "boxes": f"ground truth: {data.box_rule}", "scheme": data.scheme,
                     "landmarker_scheme": lspec.scheme, "point_sets": section["point_sets"],
                     "normaliser": f"{kinds[0]} (default): {L.NORMALISERS[kinds[0]]}",
                     "normalisers": {k: L.NORMALISERS[k] for k in kinds},
                     "ced": f"fraction of faces with NME <= x; AUC@{AUC_THRESHOLD} exact for the step CED",
                     "failures": f"NME > {', '.join(map(str, THRESHOLDS))}; faces without a prediction count"},
        "metrics": metrics,
        "sections": {"landmarks": section,
                     "intervals": _intervals.landmarks(spec, metrics, errs, AUC_THRESHOLD, THRESHOLDS)},
        "curves": {"ced": ced},
    }


def summary_text(name: str, ref: "DataRef", result: dict) -> str:
    """What a run prints: NME of each point set (default normaliser) and its CED at a few errors."""
    sec = result["sections"]["landmarks"]
    lines = [f"{name} on {ref.name} ({sec['sample']}):"]
    for label, curve in result["curves"]["ced"].items():
        row = sec["table"][label][curve["normaliser"]]
        x, y = np.asarray(curve["x"]), np.asarray(curve["y"])
        ced = ", ".join(f"<={t:.2f}: {y[np.searchsorted(x, t - 1e-12)]:.0%}" for t in (0.02, 0.04, 0.06, 0.08, 0.10))
        nme = "n/a" if row["nme"] is None else f"{row['nme']:.4f}"
        lines.append(f"  {label} NME ({curve['normaliser']}) {nme}, AUC@{AUC_THRESHOLD} {row['auc']:.3f}, "
                     f"failures@0.08 {row['failure_rate']['0.08']:.0%}, missed {row['missed']}; CED {ced}")
    return "\n".join(lines)


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    name = spec.components["landmarker"]
    lspec = ctx.registry.get("landmarker", name)
    lm = ctx.registry.build("landmarker", name, spec.options.get(name))
    results = []
    for ref in spec.eval:
        if "landmarks" not in ctx.registry.get("dataset", ref.name).tasks:
            raise HarnessError(
                f"dataset {ref.name!r} has no landmark annotations; a landmarks run needs one such as "
                f"--eval aflw2000=PATH (datasets with landmarks: see `harness list dataset`)")
        results.append(_evaluate(spec, ctx, ref, lm, lspec))
        ctx.log(summary_text(name, ref, results[-1]))
    out = results[0]
    if len(results) > 1:
        out["sections"]["other_evals"] = [{k: r[k] for k in ("protocol", "metrics")} for r in results[1:]]
    return out
