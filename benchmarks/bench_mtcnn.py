"""MTCNN: facebench's implementation against facenet-pytorch 2.6.0 (same weights).

Run:  python benchmarks/bench_mtcnn.py [--images 200] [--threads 2]

Reports, on the first N LFW images by sorted path (one at a time, and in
batches of 32) and on ``images/multiface.jpg``: images/s of each, the speed
ratio (ours / reference), face counts and agreement (worst IoU of matched
faces, worst landmark distance, images whose face count differs).
facenet-pytorch is loaded through ``tests/plugins/detectors/facenet_reference``
(a torchvision stand-in for its NMS import, inside this process only).
Timings are noisy on a shared machine: read the ratio, measured in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rgb(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="best of R timings")
    args = ap.parse_args(argv)

    import torch

    from harness.paths import require_data_root
    from harness.registry import Registry
    from tests.plugins.detectors.facenet_reference import load_facenet_mtcnn, reference_detect
    from tests.plugins.detectors.test_mtcnn_reference import compare

    torch.set_num_threads(args.threads)
    data = require_data_root()
    paths = sorted((data / "lfw_home" / "lfw_funneled").glob("*/*.jpg"))[: args.images]
    images = [_rgb(p) for p in paths]
    multi = _rgb(data / "images" / "multiface.jpg")
    ours = Registry().build("detector", "mtcnn", {"threads": args.threads})
    ref = load_facenet_mtcnn()
    for im in images[:3]:  # warm up both
        ours.detect(im)
        reference_detect(ref, im)

    t_ref, R = _time(lambda: [reference_detect(ref, im) for im in images], args.repeats)
    t_ours, O = _time(lambda: [ours.detect(im) for im in images], args.repeats)
    t_ref_b, _ = _time(lambda: [ref.detect(images[i:i + 32], landmarks=True) for i in range(0, len(images), 32)],
                       args.repeats)
    t_ours_b, _ = _time(lambda: ours.detect_batch(images), args.repeats)
    t_ref_m, Rm = _time(lambda: reference_detect(ref, multi), max(1, args.repeats))
    t_ours_m, Om = _time(lambda: ours.detect(multi), max(1, args.repeats))

    worst_iou, worst_lm, differ = 1.0, 0.0, []
    for p, r, o in zip(paths + ["multiface.jpg"], R + [Rm], O + [Om]):
        if len(r[0]) != len(o):
            differ.append(f"{Path(p).name}: ref {len(r[0])} ours {len(o)}")
        if len(r[0]) and len(o):
            i, l = compare(r, o)
            worst_iou, worst_lm = min(worst_iou, i), max(worst_lm, l)
    n = len(images)
    result = {
        "threads": args.threads,
        "lfw_images": n,
        "faces_reference": int(sum(len(r[0]) for r in R)),
        "faces_ours": int(sum(len(o) for o in O)),
        "multiface_faces": {"reference": int(len(Rm[0])), "ours": int(len(Om))},
        "one_at_a_time_img_per_s": {"reference": n / t_ref, "ours": n / t_ours, "ratio": t_ref / t_ours},
        "batched_img_per_s": {"reference_b32": n / t_ref_b, "ours_b32": n / t_ours_b, "ratio": t_ref_b / t_ours_b},
        "multiface_img_per_s": {"reference": 1 / t_ref_m, "ours": 1 / t_ours_m, "ratio": t_ref_m / t_ours_m},
        "agreement": {"worst_iou": worst_iou, "worst_landmark_px": worst_lm, "count_differs": differ},
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
