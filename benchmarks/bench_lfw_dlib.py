"""Full LFW View 2 (6,000 pairs, 10 folds) with dlib_resnet through the harness.

Reproduces dlib's published LFW result under facebench's stated protocol and
puts it beside the plain-script peer in ../shared/docs/BASELINES.md (98.55 %
± 0.54 with HOG detection, largest face, no jitter).

    python benchmarks/bench_lfw_dlib.py [--detector dlib_hog] [--reports DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PEER = {"accuracy": 0.9855, "std": 0.0054, "seconds": 404, "source": "BASELINES.md (plain dlib script, 2 processes)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="dlib_hog")
    ap.add_argument("--reports", default="benchmarks/results/lfw_dlib")
    ap.add_argument("--lfw", default=None, help="lfw_home folder (default FACEBENCH_DATA/lfw_home)")
    args = ap.parse_args()
    from harness.paths import data_path

    lfw = args.lfw or str(data_path("lfw_home"))
    cmd = [sys.executable, "-m", "harness", "run", "--recognizer", "dlib_resnet", "--detector", args.detector,
           "--eval", f"lfw={lfw}", "--reports", args.reports, "--force"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "FACEBENCH_PROGRESS": "0"})
    wall = time.perf_counter() - t0
    runs = sorted(Path(args.reports).glob("runs/*/results.json"), key=lambda p: p.stat().st_mtime)
    res = json.loads(runs[-1].read_text())
    m = {x["name"]: x for x in res["metrics"]}
    acc = m["accuracy"]
    p = res["protocol"]
    print(f"dlib_resnet on LFW View 2 ({p['pairs']} pairs, {p['folds']} folds), detector {p['detector']}, "
          f"alignment {p['alignment']}, fallbacks {p['fallbacks']}")
    print(f"  accuracy {acc['value']:.4f} ± {acc['std']:.4f}   (peer: {PEER['accuracy']:.4f} ± {PEER['std']:.4f}; "
          f"published 0.9938 ± 0.0027 with 100 jitters)")
    for name in ("tar_at_far_1e-3", "eer", "auc"):
        print(f"  {name} {m[name]['value']}")
    print(f"  wall {wall:.0f} s for {p['images']} images ({wall / p['images'] * 1000:.0f} ms per image, one process); "
          f"peer {PEER['seconds']} s with 2 processes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
