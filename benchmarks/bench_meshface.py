"""The meshface benchmark on LFW View 2 with dlib_resnet, through `harness run`.

    python benchmarks/bench_meshface.py --folds 2 --inpainters telea navier_stokes
    python benchmarks/bench_meshface.py --folds 2 --inpainters demeshnet \
        --weights demeshnet=reports/weights/demeshnet.pt
    python benchmarks/bench_meshface.py --folds 10 --prepare-train CHIPS/   # training chips
    python benchmarks/bench_meshface.py --fit-from CHIPS/ --inpainters demeshnet --out W/  # e.g. on a GPU
    python benchmarks/bench_meshface.py --folds 10 --inpainters demeshnet \
        --weights demeshnet=W/demeshnet-folds0-1-2-3-4.pt,W/demeshnet-folds5-6-7-8-9.pt

Each inpainter is one `harness run --inpainter X --recognizer dlib_resnet
--eval lfw=PATH --eval-folds 0 ... ` (so the numbers are those of the
harness itself); the script then prints a table from the runs' results.json.
Clean and meshed embeddings and face locations are cached under
REPORTS/cache, so only the restored crops are embedded for the second and
later inpainters.  --prepare-train writes, for each model the harness would
train (one; or, when the evaluated folds leave too few LFW identities, one per
cross-fit group of folds), the aligned 150x150 dlib chips of the LFW images
whose identities are outside that model's folds (JPEG bytes in an .npz, with
the training identities), for training the nets elsewhere (e.g. on a GPU)
with --fit-from; the checkpoints record those identities, and `harness run`
checks that no evaluated pair is restored by a model that saw its people.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LFW = os.environ.get("FACEBENCH_DATA", str(ROOT.parent / "shared" / "data")) + "/lfw_home"


def _run(inpainter: str, args, extra: list[str]) -> Path:
    if args.backbone:
        name, weights = args.backbone.split("=", 1)
        verifier = ["--backbone", name, "-o", f"{name}.weights={weights}"]
    else:
        verifier = ["--recognizer", "dlib_resnet"]
    cmd = ["harness", "run", "--inpainter", inpainter, *verifier,
           "--eval", f"lfw={args.lfw}", "--reports", args.reports]
    for f in range(args.folds):
        cmd += ["--eval-folds", str(f)]
    cmd += extra
    t0 = time.time()
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "FACEBENCH_PROGRESS": "0"})
    print(f"  {inpainter}: {time.time() - t0:.0f} s", flush=True)
    runs = sorted((Path(args.reports) / "runs").glob(f"*-{inpainter}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


def _row(run: Path) -> dict:
    res = json.loads((run / "results.json").read_text())
    by = {m["name"]: m["value"] for m in res["metrics"]}
    return {"run": run.name, "inpainter": res["provenance"]["config"]["components"]["inpainter"],
            "verifier": res["protocol"]["recognizer"],
            "mask": res["protocol"]["mask"], "pairs": res["protocol"]["pairs"], **by}


def _table(rows: list[dict]) -> str:
    cols = ["accuracy_clean", "accuracy_meshed", "accuracy_restored", "tar_at_far_1e-3_meshed",
            "tar_at_far_1e-3_restored", "eer_meshed", "eer_restored", "psnr_meshed", "psnr_restored",
            "ssim_meshed", "ssim_restored", "mask_iou"]
    out = ["| inpainter | pairs | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        vals = [("" if r.get(c) is None else f"{r[c]:.4f}") for c in cols]
        out.append(f"| {r['inpainter']} ({r['mask'].split(' ')[0]}) | {r['pairs']} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def prepare_train(args) -> None:
    """Training chips for each model the harness would train (one, or one per cross-fit fold group)."""
    import cv2
    import numpy as np

    from harness.config import DataRef, RunSpec, TrainSettings
    from harness.registry import get_registry
    from harness.results import RunStore
    from harness.tasks import TaskContext
    from harness.tasks.inpainting import (_load_pairs, _norm, aligned_faces, fold_identities, plan_training,
                                          training_subset)

    reg = get_registry()
    spec = RunSpec("inpainting", {"inpainter": "telea", "recognizer": "dlib_resnet"}, (),
                   (DataRef("lfw", args.lfw),), {}, TrainSettings(), 0, tuple(range(args.folds)))
    run = RunStore(args.reports).create("prepare-train", "prep000000")
    ctx = TaskContext(reg, run, Path(args.reports) / "cache", progress=True)
    pairs, _ = _load_pairs(ctx, spec)
    by_fold = fold_identities(pairs)
    train = reg.build("dataset", "mesh", {}, path=args.lfw).train_set()
    tid = np.array([_norm(train.identities[l]) for l in train.labels], dtype=object)
    groups, mode = plan_training(by_fold, tid)
    print(mode)
    rec = reg.build("recognizer", "dlib_resnet", {})
    out = Path(args.prepare_train)
    out.mkdir(parents=True, exist_ok=True)
    for g in groups:
        banned = set().union(*(by_fold[f] for f in g))
        cand = training_subset(tid, banned, args.train_images)
        faces = aligned_faces(ctx, spec, train, cand, rec, reg.get("recognizer", "dlib_resnet"), desc="train chips")
        blobs = [np.frombuffer(cv2.imencode(".jpg", cv2.cvtColor(c, cv2.COLOR_RGB2BGR),
                                            [cv2.IMWRITE_JPEG_QUALITY, args.jpeg_quality])[1], np.uint8)
                 for c in faces.crops]
        arr = np.empty(len(blobs), object)
        arr[:] = blobs
        path = out / f"folds{'-'.join(map(str, g))}.npz"
        np.savez(path, jpeg=arr, fallback=faces.fallback, folds=np.array(g),
                 train_identities=np.array(sorted(set(tid[cand]))), excluded=np.array(sorted(banned)))
        print(f"{path}: {len(blobs)} training chips of {len(set(tid[cand]))} identities "
              f"(none of the {len(banned)} identities of folds {list(g)}), {path.stat().st_size / 1e6:.1f} MB")


def fit(args) -> None:
    """Train the nets from --prepare-train chips (runs anywhere torch runs, e.g. a GPU).

    --fit-from takes one .npz or the folder of them; weights go to
    OUT/NAME-foldsA-B-....pt with the chips' training identities recorded, ready for
    --weights NAME=A.pt,B.pt.
    """
    import cv2
    import numpy as np

    from harness.registry import get_registry

    src = Path(args.fit_from)
    files = sorted(src.glob("folds*.npz")) if src.is_dir() else [src]
    reg = get_registry()
    for file in files:
        z = np.load(file, allow_pickle=True)
        chips = [cv2.cvtColor(cv2.imdecode(b, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for b in z["jpeg"]]
        for name in args.inpainters:
            opts = dict(o.split("=", 1) for o in args.option if o.startswith(name + "."))
            opts = {k.split(".", 1)[1]: v for k, v in opts.items()}
            inp = reg.build("inpainter", name, opts)
            ident = None
            if getattr(inp, "uses_identity", False):
                ident = reg.build("backbone", "mobilefacenet", {"weights": "casia"})
            hist = inp.fit(chips, rng_seed=0, steps=args.steps, progress=False, identity_embedder=ident,
                           workers=args.workers, time_budget=args.time_budget)
            inp.train_identities = frozenset(str(n) for n in z["train_identities"])
            path = inp.save(Path(args.out) / f"{name}-{file.stem}.pt")
            print(json.dumps({"inpainter": name, "chips": file.name, "images": len(chips), "steps": hist["steps"],
                              "wall_s": round(hist["wall_s"], 1), "img_per_s": round(hist["img_per_s"], 1),
                              "device": hist["device"], "loss_first": hist["loss"][:3],
                              "loss_last": hist["loss"][-3:], "lr_last": hist["lr"][-1],
                              "terms_last": {k: v[-1] for k, v in hist["terms"].items()}, "weights": str(path)}),
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=2, help="evaluate on LFW folds 0..N-1 (10 = the full protocol)")
    ap.add_argument("--inpainters", nargs="+", default=["telea", "navier_stokes"])
    ap.add_argument("--lfw", default=DEFAULT_LFW)
    ap.add_argument("--backbone", default="", help="NAME=WEIGHTS: verify with this backbone instead of dlib_resnet, "
                                                   "e.g. mobilefacenet=casia")
    ap.add_argument("--reports", default="reports/bench_meshface")
    ap.add_argument("--weights", nargs="*", default=[], help="NAME=PATH of trained inpainter weights")
    ap.add_argument("-o", "--option", action="append", default=[], help="COMPONENT.KEY=VALUE")
    ap.add_argument("--prepare-train", default="", help="folder for the training chips of each model")
    ap.add_argument("--train-images", type=int, default=3000, help="chips per model (the harness's cap)")
    ap.add_argument("--jpeg-quality", type=int, default=92)
    ap.add_argument("--fit-from", default="")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds of training per net")
    ap.add_argument("--out", default="reports/weights")
    args = ap.parse_args()
    if args.prepare_train:
        return prepare_train(args)
    if args.fit_from:
        return fit(args)
    weights = dict(w.split("=", 1) for w in args.weights)
    rows = []
    for name in args.inpainters:
        extra = [f for o in args.option if o.startswith(name + ".") for f in ("-o", o)]
        if name in weights:
            extra += ["-o", f"{name}.weights={weights[name]}"]
        rows.append(_row(_run(name, args, extra)))
    print(_table(rows))


if __name__ == "__main__":
    sys.exit(main())
