"""facebench's evaluation pipeline against the plain two-process dlib script, side by side in one run.

Both do the same work on the same LFW images: dlib's HOG detector, dlib's
5-point shape predictor and 150x150 chip, dlib's ResNet descriptor (no
jitter), Euclidean distance, accuracy cross-validated over the folds with the
threshold chosen on the other folds over all midpoints between distinct
scores.  They differ where facebench's protocol differs (stated in its
results): facebench keeps the face nearest the image centre and, with no
face, embeds a flagged centre crop; the script keeps the largest face, retries
HOG at upsample 2, then embeds the whole image.

* peer: this file run with ``--peer`` in a fresh interpreter, a
  ``multiprocessing.Pool(2)`` over the images — what a user would write
  (``../shared/docs/BASELINES.md``);
* facebench: ``python -m harness run --recognizer dlib_resnet --detector
  dlib_hog --eval lfw=… [--eval-folds 0] --workers N`` into a fresh reports
  folder (so no detection is reused from a cache), ``FACEBENCH_COST=0``
  (no model-card timing) unless ``--with-model-card``.

Both wall times include starting the interpreter and loading the models.

    python benchmarks/bench_lfw_pipeline.py              # View 2: 6,000 pairs, 7,701 images
    python benchmarks/bench_lfw_pipeline.py --folds 1    # fold 1: 600 pairs, 807 images
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


# ----------------------------------------------------------------------- peer
def _peer_init() -> None:
    import importlib.util

    import dlib

    # PyPI face-recognition-models' own helpers import pkg_resources: find its folder instead
    models = Path(importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]) / "models"
    global _DET, _SP, _NET
    _DET = dlib.get_frontal_face_detector()
    _SP = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    _NET = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))


def _peer_embed(path: str) -> tuple[np.ndarray, bool]:
    import dlib

    img = dlib.load_rgb_image(path)
    rects = _DET(img, 1)
    if len(rects) == 0:
        rects = _DET(img, 2)
    found = len(rects) > 0
    rect = max(rects, key=lambda r: r.area()) if found else dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1)
    shape = _SP(img, rect)
    return np.asarray(_NET.compute_face_descriptor(img, shape), np.float32), found


def lfw_pairs(lfw: Path, folds: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Unique image paths, pairs as rows into them, same-person flags and folds (pairs.txt order)."""
    lines = (lfw / "pairs.txt").read_text().split("\n")
    n_folds, per = (int(v) for v in lines[0].split())
    images = lfw / "lfw_funneled"
    paths: dict[str, int] = {}
    rows, same, fold = [], [], []
    for i, line in enumerate(lines[1:1 + min(folds, n_folds) * 2 * per]):
        parts = line.split("\t")
        a, b = ((parts[0], int(parts[1])), (parts[0], int(parts[2]))) if len(parts) == 3 else \
            ((parts[0], int(parts[1])), (parts[2], int(parts[3])))
        row = []
        for name, k in (a, b):
            p = str(images / name / f"{name}_{k:04d}.jpg")
            row.append(paths.setdefault(p, len(paths)))
        rows.append(row)
        same.append(len(parts) == 3)
        fold.append(i // (2 * per))
    return list(paths), np.asarray(rows), np.asarray(same), np.asarray(fold)


def cv_accuracy(dist: np.ndarray, same: np.ndarray, fold: np.ndarray) -> tuple[float, float]:
    """Mean and population std of the per-fold accuracy: the threshold (accept when the
    distance is at most it) chosen on the other folds over all midpoints of distinct distances.
    One fold is split into 10 stratified sub-folds, as facebench does."""
    if len(np.unique(fold)) == 1:
        fold = np.empty(len(same), np.int64)
        for cls in (True, False):
            idx = np.flatnonzero(same == cls)
            fold[idx] = np.arange(len(idx)) % 10
    accs = []
    for f in np.unique(fold):
        train, test = fold != f, fold == f
        d = np.unique(dist[train])
        cands = np.concatenate([[d[0] - 1], (d[1:] + d[:-1]) / 2, [d[-1] + 1]])
        acc_train = [np.mean((dist[train] <= t) == same[train]) for t in cands]
        t = cands[int(np.argmax(acc_train))]
        accs.append(np.mean((dist[test] <= t) == same[test]))
    return float(np.mean(accs)), float(np.std(accs))


def peer(lfw: Path, folds: int, processes: int) -> dict:
    """The plain script: a pool of processes embeds the images, then pairs are scored."""
    import multiprocessing as mp

    paths, rows, same, fold = lfw_pairs(lfw, folds)
    with mp.get_context("fork").Pool(processes, initializer=_peer_init) as pool:
        out = pool.map(_peer_embed, paths, chunksize=16)
    emb = np.stack([e for e, _ in out])
    dist = np.linalg.norm(emb[rows[:, 0]] - emb[rows[:, 1]], axis=1)
    acc, std = cv_accuracy(dist, same, fold)
    return {"images": len(paths), "pairs": len(rows), "accuracy": acc, "std": std,
            "no_face": int(sum(not f for _, f in out))}


# ------------------------------------------------------------------ the race
def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_peer(lfw: Path, folds: int, processes: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--peer", "--lfw", str(lfw), "--folds", str(folds),
                           "--processes", str(processes)], check=True, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t0, json.loads(done.stdout.strip().splitlines()[-1])


def run_facebench(lfw: Path, folds: int, workers: int | None, model_card: bool) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory(prefix="bench-lfw-pipeline-") as reports:
        cmd = [sys.executable, "-m", "harness", "run", "--recognizer", "dlib_resnet", "--detector", "dlib_hog",
               "--eval", f"lfw={lfw}", "--reports", reports, "--force"]
        if folds == 1:
            cmd += ["--eval-folds", "0"]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        env = {**os.environ, "FACEBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
        if not model_card:
            env["FACEBENCH_COST"] = "0"
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        wall = time.perf_counter() - t0
        (path,) = Path(reports).glob("runs/*/results.json")
        return wall, json.loads(path.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=10, choices=range(1, 11), metavar="K",
                    help="LFW View 2 folds to evaluate (1: fold 1 only, 807 images)")
    ap.add_argument("--lfw", default=None, help="lfw_home folder (default FACEBENCH_DATA/lfw_home)")
    ap.add_argument("--workers", type=int, default=None, help="facebench --workers (default: its own choice)")
    ap.add_argument("--processes", type=int, default=2, help="the peer's pool size")
    ap.add_argument("--with-model-card", action="store_true", help="let facebench time the model card too")
    ap.add_argument("--facebench-first", action="store_true",
                    help="run facebench before the peer (alternate the order to see drift in the machine's load)")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lfw:
        lfw = Path(args.lfw)
    else:
        from harness.paths import data_path

        lfw = Path(data_path("lfw_home"))
    if args.peer:
        print(json.dumps(peer(lfw, args.folds, args.processes)))
        return 0
    if args.folds not in (1, 10):
        ap.error("--folds is 10 (View 2) or 1 (fold 1): facebench evaluates whole protocols or one fold")
    print(f"LFW {'View 2' if args.folds == 10 else 'fold 1'}; {os.cpu_count()} CPUs, "
          f"usable {len(os.sched_getaffinity(0))}")
    runs = {"peer": lambda: run_peer(lfw, args.folds, args.processes),
            "facebench": lambda: run_facebench(lfw, args.folds, args.workers, args.with_model_card)}
    out = {}
    for name in (["facebench", "peer"] if args.facebench_first else ["peer", "facebench"]):
        print(f"load average before {name}: {load()}")
        out[name] = runs[name]()
    print(f"load average after: {load()}")
    (p_wall, p), (f_wall, res) = out["peer"], out["facebench"]
    acc = next(m for m in res["metrics"] if m["name"] == "accuracy")
    pipe = res.get("sections", {}).get("pipeline", {})
    print(f"\nplain dlib script ({args.processes} processes): {p_wall:7.1f} s  {p['images']} images, "
          f"{p['pairs']} pairs, accuracy {p['accuracy']:.4f} ± {p['std']:.4f} ({p['no_face']} without a face)")
    print(f"facebench (workers {pipe.get('workers')}, embedding on {pipe.get('embed_on')}): {f_wall:7.1f} s  "
          f"{res['protocol']['images']} images, {res['protocol']['pairs']} pairs, accuracy {acc['value']:.4f} "
          f"± {acc.get('std') or 0:.4f} ({res['protocol']['fallbacks']} fallbacks)")
    print(f"  pipeline wall {pipe.get('wall_s')} s, {pipe.get('img_per_s')} img/s; "
          f"stage seconds (summed over processes): {pipe.get('seconds')}")
    print(f"\nfacebench / plain script wall time: {f_wall / p_wall:.2f}x  (lower is better; measured beside "
          f"whatever else ran on the machine: see the load averages above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
