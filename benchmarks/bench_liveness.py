"""Liveness benchmark: the real checks of issue 9.

1. ``minifasnet`` (released weights) on the four Silent-Face-Anti-Spoofing
   sample photos and on the first N LFW photos by sorted path (all bona
   fide): scores and the share accepted as real.
2. ``lbp_svm``, ``binary_cnn`` and ``aux_depth`` trained on synthesized
   print / replay attacks made from LFW identities and tested on disjoint
   identities, through ``harness run`` (the ISO/IEC 30107-3 table), with
   ``minifasnet`` on the same test split for reference.

Synthesized attacks are not a substitute for a real PAD database; the
numbers measure the pipeline and the models' ability to learn these
artefacts, not real-world attack detection.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_liveness.py --identities 400 \
        --out /tmp/facebench_spoof --reports /tmp/facebench_liveness_reports
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def _registry():
    """The global registry, with the ``spoof`` dataset added when the built-in
    registration has not landed yet."""
    from harness.hookspecs import hookimpl
    from harness.registry import Registry, reset_registry
    from harness.specs import DatasetSpec

    class SpoofPlugin:
        __name__ = "bench_spoof_dataset"

        @staticmethod
        @hookimpl
        def register_datasets():
            from facebench_plugins.datasets.spoof import SpoofOptions

            return [DatasetSpec(name="spoof", summary="spoof layout", factory="facebench_plugins.datasets.spoof:build",
                                framework="opencv", options=SpoofOptions, tasks=("liveness",))]

    reg = Registry()
    if "spoof" not in reg.names("dataset"):
        reg = Registry(plugins=[SpoofPlugin])
    reset_registry(reg)
    return reg


def minifasnet_check(data: Path, n_lfw: int) -> dict:
    from harness.formats.images import read_image

    reg = _registry()
    m = reg.build("liveness", "minifasnet", registry=reg)
    out: dict = {"samples": {}}
    for name in ("F1", "F2", "T1", "T2"):
        img = read_image(data / "antispoof" / f"image_{name}.jpg")
        box = m.find_face(img)
        probs = m.probabilities(img, box[None])[0]
        out["samples"][name] = {"size": f"{img.shape[1]}x{img.shape[0]}", "p_real": round(float(probs[1]), 4),
                                "probs": [round(float(p), 4) for p in probs], "argmax": int(probs.argmax())}
    lfw = sorted((data / "lfw_home" / "lfw_funneled").glob("*/*.jpg"))[:n_lfw]
    t0 = time.perf_counter()
    scores = m.score([read_image(p) for p in lfw])
    wall = time.perf_counter() - t0
    out["lfw"] = {"images": len(lfw), "mean": round(float(scores.mean()), 4), "median": round(float(np.median(scores)), 4),
                  "min": round(float(scores.min()), 4), "p10": round(float(np.percentile(scores, 10)), 4),
                  "accepted_at_0.5": round(float((scores >= 0.5).mean()), 4), "no_face": m.last_no_face,
                  "ms_per_image": round(1000 * wall / len(lfw), 1)}
    return out


def protocol_table(reports: Path) -> list[dict]:
    rows = []
    for p in sorted(reports.glob("runs/*/results.json")):
        r = json.loads(p.read_text())
        if r.get("status") != "finished" or r.get("task") != "liveness":
            continue
        m = {x["name"]: x["value"] for x in r["metrics"]}
        lv = r["sections"]["liveness"]
        rows.append({"model": r["provenance"]["config"]["components"]["liveness"],
                     **{k: round(m[k], 4) for k in ("apcer", "bpcer", "acer", "hter", "eer", "auc")},
                     "apcer_per_species": {k: round(v, 4) for k, v in lv["apcer_per_species"].items()},
                     "threshold": round(lv["threshold"], 4), "threshold_source": lv["threshold_source"],
                     "train_wall_s": r["sections"].get("training", {}).get("wall_s"),
                     "test": f"{r['protocol']['bona_fide']} bona fide / {r['protocol']['attacks']} attacks"})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("FACEBENCH_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data")))
    ap.add_argument("--identities", type=int, default=400)
    ap.add_argument("--images-per-identity", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lfw-images", type=int, default=200)
    ap.add_argument("--out", default="/tmp/facebench_spoof_bench")
    ap.add_argument("--reports", default="/tmp/facebench_liveness_reports")
    ap.add_argument("--models", default="lbp_svm,binary_cnn,aux_depth,minifasnet")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--skip-minifasnet-check", action="store_true")
    a = ap.parse_args(argv)
    data = Path(a.data)
    os.environ.setdefault("FACEBENCH_PROGRESS", "0")
    results: dict = {"threads": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    if not a.skip_minifasnet_check:
        results["minifasnet"] = minifasnet_check(data, a.lfw_images)
        print(json.dumps(results["minifasnet"], indent=1), flush=True)
    from harness.synth import synthesize_spoof_set

    t0 = time.perf_counter()
    summary = synthesize_spoof_set(data / "lfw_home", a.out, identities=a.identities, seed=a.seed,
                                   images_per_identity=a.images_per_identity, overwrite=True, progress=False)
    results["synthesis"] = {"counts": summary["counts"], "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(results["synthesis"], indent=1), flush=True)
    from harness.cli import main as harness_main

    _registry()
    args = ["run", "--train", f"spoof={a.out}", "--eval", f"spoof={a.out}", "--reports", a.reports, "--force"]
    for m in a.models.split(","):
        args += ["--liveness", m]
        if m in ("binary_cnn", "aux_depth"):
            args += ["-o", f"{m}.epochs={a.epochs}"]
    t0 = time.perf_counter()
    code = harness_main(args)
    results["harness_run"] = {"exit": code, "wall_s": round(time.perf_counter() - t0, 1)}
    results["table"] = protocol_table(Path(a.reports))
    print(json.dumps({k: results[k] for k in ("harness_run", "table")}, indent=1))
    Path(a.reports, "bench_liveness.json").write_text(json.dumps(results, indent=1))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
