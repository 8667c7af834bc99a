"""Every built-in detector: speed on LFW and a group photo, AP on 200 WIDER images.

Run:  python benchmarks/bench_detectors.py [--images 200] [--threads 2] [--detectors a,b]

* speed: images/s one at a time on the first N LFW images (250×250, sorted
  by path) and on ``images/multiface.jpg`` (1200×630), torch/OpenCV set to
  ``--threads`` threads (dlib runs one thread);
* AP: WIDER FACE val AP (easy / medium / hard keep-lists, IoU 0.5,
  ``harness.metrics.detection.wider_ap``) on the 200 images in
  ``wider/images_416`` — those images are stretched to 416×416, so the ground
  truth boxes are scaled by (416/W, 416/H) with W, H from ``labelv2_val.txt``.
  Only these 200 images' faces count, so the numbers are not comparable with
  published full-val APs.  Detectors run with low score thresholds for AP.
Timings are noisy on a shared machine: compare detectors within one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEED_OPTIONS = {"dlib_mmod": {"upsample": 1}}
AP_OPTIONS = {
    "retinaface": {"score_threshold": 0.02},
    "yunet": {"score_threshold": 0.3},
    "dlib_hog": {"threshold": -0.5, "landmarks": "none"},
    "dlib_mmod": {"threshold": -0.5, "landmarks": "none"},
    "haar": {"min_neighbors": 3},
}


def _rgb(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def wider_subset(data: Path):
    """(keys, images, gt boxes scaled to 416², keep masks per setting) for images_416."""
    from harness.metrics.detection import load_wider_ground_truth

    sizes = {}
    for line in (data / "wider" / "labelv2_val.txt").read_text().splitlines():
        if line.startswith("#"):
            _, rel, w, h = line.split()
            sizes[Path(rel).stem] = (rel[: -len(".jpg")], int(w), int(h))
    gt = load_wider_ground_truth(data / "wider")
    files = sorted((data / "wider" / "images_416").glob("*.jpg"))
    keys, boxes = [], {}
    for f in files:
        key, w, h = sizes[f.stem]
        keys.append(key)
        boxes[key] = gt.boxes[key] * np.array([416 / w, 416 / h, 416 / w, 416 / h])
    keep = {s: {k: gt.keep[s][k] for k in keys} for s in gt.keep}
    return keys, files, boxes, keep


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--detectors", default="", help="comma-separated subset (default: all with weights)")
    ap.add_argument("--no-ap", action="store_true")
    args = ap.parse_args(argv)

    import cv2
    import torch

    from harness.errors import HarnessError
    from harness.paths import require_data_root
    from harness.registry import Registry

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    data = require_data_root()
    reg = Registry()
    names = args.detectors.split(",") if args.detectors else reg.names("detector")
    lfw = [_rgb(p) for p in sorted((data / "lfw_home" / "lfw_funneled").glob("*/*.jpg"))[: args.images]]
    multi = _rgb(data / "images" / "multiface.jpg")
    wider = None
    if not args.no_ap:
        try:
            from harness.metrics.detection import wider_ap  # noqa: F401

            wider = wider_subset(data)
        except ImportError:
            print("harness.metrics.detection.wider_ap not available: AP skipped", file=sys.stderr)

    table = {}
    for name in names:
        try:
            det = reg.build("detector", name, SPEED_OPTIONS.get(name, {}))
        except HarnessError as exc:
            table[name] = {"skipped": str(exc).splitlines()[0]}
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        det.detect(lfw[0])
        t = time.perf_counter()
        faces = sum(len(det.detect(im)) for im in lfw)
        t_lfw = time.perf_counter() - t
        t = time.perf_counter()
        n_multi = len(det.detect(multi))
        t_multi = time.perf_counter() - t
        row = {"lfw_img_per_s": len(lfw) / t_lfw, "lfw_faces": faces,
               "multiface_img_per_s": 1 / t_multi, "multiface_faces": n_multi}
        if wider is not None:
            from harness.metrics.detection import wider_ap

            det_ap = reg.build("detector", name, AP_OPTIONS.get(name, {}))
            keys, files, boxes, keep = wider
            preds = {}
            for key, f in zip(keys, files):
                d = det_ap.detect(_rgb(f))
                preds[key] = np.column_stack([d.boxes, d.scores]) if len(d) else np.zeros((0, 5))
            for setting in ("easy", "medium", "hard"):
                try:
                    row[f"wider200_ap_{setting}"] = wider_ap(preds, boxes, keep[setting])[0]
                except Exception as exc:  # e.g. every score equal
                    row[f"wider200_ap_{setting}"] = f"n/a ({exc})"
        table[name] = row
        print(name, json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"threads": args.threads, "lfw_images": len(lfw), "detectors": table}, indent=2))
    return table


if __name__ == "__main__":
    main()
