"""Results folders shaped exactly as the tasks write them, for every task.

The metrics come from the real code paths -- ``verification_summary`` with
the recognition task's interval call, the identification task's
``summarise``, ``liveness_summary``, ``wider_ap`` -- on seeded synthetic
scores, so the pages are tested on what a run stores (intervals, bands,
published figures, one-fold protocols, training records), not on hand-made
dicts.  Small B keeps it fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from harness.config import IntervalSettings
from harness.results import RunDir, RunStore, collect_provenance

B = 120


def _spec(seed: int = 0) -> SimpleNamespace:
    return SimpleNamespace(intervals=IntervalSettings(bootstrap=B), seed=seed)


def component(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    d = {"kind": kind, "name": name, "summary": f"The {name} {kind}.", "framework": "torch", "available": True,
         "paper": "", "license": "MIT", "options": {}, "weights": [], "meta": {}}
    d.update(extra)
    return d


def write(store: RunStore, task: str, body: dict, components: dict, *, config: dict | None = None,
          grid_id: str | None = None, name: str | None = None, seed: int = 0) -> RunDir:
    cfg = {"task": task, "components": {k: v["name"] for k, v in components.items()}, "seed": seed,
           "options": {}, "train": [], "eval": [], **(config or {})}
    h = hashlib.sha256(json.dumps([cfg, name, grid_id, body.get("protocol")], default=str).encode()).hexdigest()[:10]
    run = store.create("-".join(v["name"] for v in components.values()), h, grid_id=grid_id)
    results = {"status": "finished", "task": task,
               "provenance": collect_provenance(cfg, components, seed, grid_id=grid_id), **body}
    if name:
        results["name"] = name
    run.write_results(results)
    return run


# ------------------------------------------------------------ recognition
def _pairs(seed: int, n_folds: int, per_fold: int, separation: float):
    """LFW-shaped pairs with subject effects: genuine pairs of one person, impostor pairs of two."""
    r = np.random.default_rng(seed)
    n = n_folds * per_fold
    y = np.tile(np.r_[np.ones(per_fold // 2, bool), np.zeros(per_fold // 2, bool)], n_folds)
    folds = np.repeat(np.arange(n_folds), per_fold)
    people = n // 4
    a = r.integers(0, people, n)
    b = np.where(y, a, (a + 1 + r.integers(0, people - 1, n)) % people)
    effect = r.normal(0, 0.15, people)
    s = np.where(y, r.normal(separation * 0.1, 0.08, n) + effect[a], r.normal(0, 0.1, n))
    return s, y, folds, a, b


def recognition_body(seed: int = 0, *, n_folds: int = 10, per_fold: int = 600, separation: float = 4.0,
                     one_fold: bool = False) -> dict:
    from harness.metrics.report import verification_summary
    from harness.tasks import _intervals
    from harness.tasks.recognition import eval_folds, threshold_rule

    s, y, folds, a, b = _pairs(seed, 1 if one_fold else n_folds, per_fold, separation)
    cv, how = eval_folds(y, folds)
    summary = verification_summary(s, y.astype(np.int64), cv)
    _intervals.verification(_spec(seed), summary, s, y.astype(np.int64), cv, a, b)
    summary["protocol"] = {
        "dataset": "lfw", "name": "LFW View 2 (6,000 pairs, 10 folds)", "pairs": int(y.size),
        "folds": int(np.unique(folds).size), "images": int(y.size * 2), "detector": "mtcnn",
        "alignment": "arcface_112", "input_size": [112, 112], "flip_test": "none", "distance": "cosine",
        "threshold_rule": threshold_rule(cv, how), "cv_folds": how,
        "tar_rule": "strict: largest TAR with FAR <= target", "fallbacks": 0, "synthetic": False,
    }
    return summary


def write_pretrained(store: RunStore, **kw) -> RunDir:
    body = recognition_body(**kw)
    body["sections"]["published"] = {"lfw_accuracy": 0.9938, "lfw_std": 0.0027, "threshold": 0.6, "jitters": 100}
    comps = {"recognizer": component("recognizer", "dlib_resnet", framework="dlib",
                                     summary="dlib's 128-d ResNet-29 face descriptor (99.38 % published on LFW).",
                                     weights=[{"filename": "dlib_face_recognition_resnet_model_v1.dat",
                                               "license": "CC0"}])}
    return write(store, "recognition", body, comps, name="dlib_resnet on LFW",
                 config={"eval": ["lfw=../shared/data/lfw_home"]})


def write_from_scratch(store: RunStore) -> RunDir:
    body = recognition_body(3, per_fold=600, separation=2.5, one_fold=True)
    body["sections"]["training"] = {
        "dataset": "synthetic", "images": 960, "identities": 120, "synthetic": True, "steps": 280, "epochs": 5,
        "wall_s": 286.4, "device": "cpu", "stopped_by": "max_steps", "resumed_from_step": None,
        "checkpoint": "checkpoints/last.ckpt", "img_per_s": 31.2,
        "epoch_evals": [{"epoch": e, "step": 56 * e, "val_accuracy": 0.6 + 0.05 * e} for e in range(1, 6)],
        "settings": {"epochs": 5, "max_steps": 280, "batch_size": 32, "lr": 0.1, "optimizer": "sgd",
                     "init": None},
    }
    steps = np.arange(0, 280, 7)
    body["curves"]["training"] = {"step": steps.tolist(), "loss": (6 * np.exp(-steps / 90) + 0.5).tolist(),
                                  "lr": np.where(steps < 20, steps / 200, 0.1).tolist()}
    comps = {"backbone": component("backbone", "mobilefacenet", input_size=[112, 112], embedding_size=128,
                                   weights=[{"filename": "068.ckpt", "license": "MIT"}]),
             "loss": component("loss", "arcface", framework="none")}
    return write(store, "recognition", body, comps, name="mobilefacenet + arcface, fold 0",
                 config={"train": ["synthetic"], "eval": ["lfw"], "eval_folds": [0],
                         "training": {"epochs": 5, "max_steps": 280, "init": None}})


def write_recognition_grid(store: RunStore, grid_id: str = "grid-ci") -> list[RunDir]:
    runs = []
    for i, (bb, sep) in enumerate((("resnet20", 3.9), ("resnet36", 4.0), ("mobilefacenet", 2.6))):
        body = recognition_body(10 + i, per_fold=200, separation=sep)
        comps = {"backbone": component("backbone", bb), "loss": component("loss", "arcface", framework="none")}
        runs.append(write(store, "recognition", body, comps, grid_id=grid_id,
                          config={"train": ["synthetic"], "eval": ["lfw"]}))
    return runs


# ---------------------------------------------------------- identification
def write_identification(store: RunStore) -> RunDir:
    from harness.tasks import _intervals
    from harness.tasks.identification import IdentificationSettings, summarise

    r = np.random.default_rng(4)
    ids = np.repeat(np.arange(60), 4)
    centres = r.normal(0, 1, (60, 32))
    emb = centres[ids] + r.normal(0, 0.9, (ids.size, 32))
    settings = IdentificationSettings(trials=3, gallery_pick="random")
    body = {"metrics": [], "sections": {}, "curves": {}}
    for open_set in (False, True):
        out = summarise(ids, emb, settings, open_set=open_set, seed=0)
        _intervals.identification(_spec(), out, out.pop("trials"), open_set=open_set, candidate_list=settings.top_k)
        key = "open_set" if open_set else "identification"
        body["metrics"] += out["metrics"]
        body["sections"][key] = out["section"]
        body["curves"]["open_set_det" if open_set else "cmc"] = out["curve"]
    body["protocol"] = {"dataset": "lfw", "name": "identification + open-set over identities with >= 2 images",
                        "images": int(ids.size), "identities": 60, "gallery_size": 1, "synthetic": False}
    return write(store, "recognition", body, {"recognizer": component("recognizer", "sface", framework="onnx")},
                 name="sface 1:N", config={"protocol": "all"})


# ------------------------------------------------------------------ liveness
def write_liveness(store: RunStore) -> RunDir:
    from harness.metrics.report import liveness_summary
    from harness.tasks import _intervals

    r = np.random.default_rng(8)
    y = np.r_[np.ones(300, bool), np.zeros(400, bool)]
    species = np.r_[[""] * 300, r.choice(["print", "replay"], 400)]
    s = np.r_[r.normal(1.5, 1, 300), r.normal(-0.5, 1, 400)]
    dev = np.r_[r.normal(1.5, 1, 200), r.normal(-0.5, 1, 200)]
    summary = liveness_summary(s, y, species, dev_scores=dev, dev_labels=np.r_[np.ones(200), np.zeros(200)])
    _intervals.liveness(_spec(), summary, s, y, species)
    summary["protocol"] = {"dataset": "spoof", "name": "ISO/IEC 30107-3: threshold fixed on the dev split",
                           "bona_fide": 300, "attacks": 400, "attack_species": {"print": 197, "replay": 203},
                           "synthetic_attacks": True, "synthetic": True}
    return write(store, "liveness", summary, {"liveness": component("liveness", "lbp_svm", framework="none")})


# ----------------------------------------------------------------- detection
def _detections(seed: int, quality: float):
    r = np.random.default_rng(seed)
    preds, gt, keeps = {}, {}, {"easy": {}, "medium": {}, "hard": {}}
    for i in range(40):
        key = f"0--Parade/img_{i}.jpg"
        n = int(r.integers(1, 8))
        xy = r.uniform(0, 900, (n, 2))
        size = r.uniform(8, 120, (n, 1))
        gt[key] = np.c_[xy, xy + size]
        keeps["hard"][key] = np.ones(n, bool)
        keeps["medium"][key] = size[:, 0] > 20
        keeps["easy"][key] = size[:, 0] > 50
        found = r.random(n) < quality * np.clip(size[:, 0] / 60, 0.3, 1)
        boxes = gt[key][found] + r.normal(0, 1.5, (int(found.sum()), 4))
        false = np.c_[r.uniform(0, 900, (2, 2)), r.uniform(0, 900, (2, 2)) + 30]
        both = np.r_[boxes, false]
        score = np.r_[r.uniform(0.5, 1, len(boxes)), r.uniform(0, 0.7, 2)]
        preds[key] = np.c_[both, score]
    return preds, gt, keeps


def detection_body(seed: int, quality: float) -> dict:
    from harness.metrics.detection import wider_ap
    from harness.metrics import Metric
    from harness.tasks import _intervals

    preds, gt, keeps = _detections(seed, quality)
    metrics, ap, pr = [], {}, {}
    for setting in ("easy", "medium", "hard"):
        value, precision, recall = wider_ap(preds, gt, keeps[setting])
        ap[setting] = value
        pr[setting] = {"recall": recall[::10].tolist(), "precision": precision[::10].tolist()}
        metrics.append(Metric(f"ap_{setting}", value, "higher",
                              convention=f"WIDER FACE {setting}: VOC AP at IoU 0.5").to_dict())
    metrics.append(Metric("images_per_s", 24.0 + seed, "higher", convention="one image at a time").to_dict())
    statement = _intervals.detection(_spec(), metrics, preds, gt, keeps)
    return {
        "protocol": {"dataset": "wider", "name": "WIDER FACE val hard (40 images)", "images": 40,
                     "faces_counted": {k: int(sum(v.sum() for v in keeps[k].values())) for k in keeps},
                     "iou": 0.5, "ap_rule": "WIDER FACE evaluation (VOC AP, 1000 score thresholds)"},
        "metrics": metrics,
        "sections": {"detection": {"ap": ap, "speed": {"images_per_s": 24.0 + seed, "ms_per_image": 41.7,
                                                       "ms_p90": 55.0, "image_size": "1024x768", "threads": "2",
                                                       "images": 40}},
                     "intervals": statement},
        "curves": {"pr": pr},
    }


def write_detection_grid(store: RunStore, grid_id: str = "grid-det") -> list[RunDir]:
    return [write(store, "detection", detection_body(20 + i, q), {"detector": component("detector", d)},
                  grid_id=grid_id, config={"eval": ["wider"]})
            for i, (d, q) in enumerate((("yunet", 0.95), ("retinaface", 0.9)))]


def build(reports: Path) -> dict[str, Any]:
    store = RunStore(reports)
    return {
        "pretrained": write_pretrained(store),
        "scratch": write_from_scratch(store),
        "identification": write_identification(store),
        "liveness": write_liveness(store),
        "recognition_grid": write_recognition_grid(store),
        "detection_grid": write_detection_grid(store),
    }
