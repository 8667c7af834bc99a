"""Reading a packed .rec vs loose JPEG files: images/s on the same images, same run.

Takes the first N LFW JPEGs (default 3,000, sorted by identity), packs their
exact bytes into an insightface-style train.rec/.idx in a temporary folder
(``harness.formats.recordio``), then times, alternating, best of R rounds:

* loose: open + read each file, and read + decode (cv2) to RGB;
* rec:   read each record by its .idx key (mmap) + unpack, and + decode;
* rec, sequential scan of the whole file (no .idx).

The page cache is warm for both (every file is read once before timing), so
the numbers compare per-item overhead, not disk speed; on a cold network
file system the gap grows.  Prints images/s and rec/loose ratios.

    python benchmarks/bench_rec_read.py [--n 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from harness.formats.folders import scan_identities
    from harness.formats.images import decode_image
    from harness.formats.recordio import RecordIOReader, unpack, write_insightface_rec
    from harness.paths import data_path

    ids = scan_identities(data_path("lfw_home/lfw_funneled"))
    files = [(label, f) for label, i in enumerate(ids) for f in i.files][: args.n]
    labels_used = sorted({lab for lab, _ in files})
    remap = {lab: k for k, lab in enumerate(labels_used)}
    blobs = [(remap[lab], f.read_bytes()) for lab, f in files]  # also warms the page cache
    total_mb = sum(len(b) for _, b in blobs) / 1e6

    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "train"
        t0 = time.perf_counter()
        write_insightface_rec(prefix, blobs, len(labels_used))
        t_write = time.perf_counter() - t0
        reader = RecordIOReader(prefix.with_suffix(".rec"))
        keys = list(range(1, len(blobs) + 1))

        def loose_read():
            for _, f in files:
                with open(f, "rb") as fh:
                    fh.read()

        def loose_decode():
            for _, f in files:
                with open(f, "rb") as fh:
                    decode_image(fh.read())

        def rec_read():
            for k in keys:
                unpack(reader.read_idx(k))

        def rec_decode():
            for k in keys:
                decode_image(unpack(reader.read_idx(k))[1])

        def rec_scan():
            r = RecordIOReader(prefix.with_suffix(".rec"), idx_path=None)
            for k in r.keys:
                r.read_idx(k)
            r.close()

        cases = {"loose read": loose_read, "rec read (idx)": rec_read, "rec scan (no idx)": rec_scan,
                 "loose read+decode": loose_decode, "rec read+decode": rec_decode}
        best = {name: float("inf") for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
        reader.close()

    n = len(files)
    print(f"{n} LFW JPEGs ({total_mb:.1f} MB) from {len(labels_used)} identities; "
          f".rec written in {t_write:.2f} s; best of {args.rounds} rounds")
    for name, t in best.items():
        print(f"  {name:<20} {n / t:>10,.0f} images/s")
    print(f"  ratio rec/loose, read only:   {best['loose read'] / best['rec read (idx)']:.2f}x")
    print(f"  ratio rec/loose, with decode: {best['loose read+decode'] / best['rec read+decode']:.2f}x")


if __name__ == "__main__":
    main()
