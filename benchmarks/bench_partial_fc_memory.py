"""Memory of the sharded classifier (partial_fc) per rank vs the unsharded one.

Runs W real gloo ranks on the CPU (W = 1 is the unsharded case: one rank
holds every centre), each doing one forward/backward/SGD step, and measures
per rank:

* parameters: bytes of this rank's class centres;
* gradients: bytes of their gradients after backward;
* optimizer state: bytes of SGD's momentum buffers after a step;
* saved activations: bytes of the tensors autograd saved for backward during
  the loss's forward (the (N_global, C/W) logits and cosines dominate),
  counted with ``torch.autograd.graph.saved_tensors_hooks``.

The measured numbers are checked against the formula and the formula is
extrapolated to the headline size (default 1M identities x 512-d fp32,
global batch 1024 on 8 ranks).

    python benchmarks/bench_partial_fc_memory.py                 # measure 100k x 512 on 1, 2, 4 ranks
    python benchmarks/bench_partial_fc_memory.py --classes 1000000 --worlds 1 2   # needs ~20 GB
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

MB = 1 << 20


def _rank(rank: int, world: int, args, init: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    from facebench_plugins.losses.partial_fc import PartialFC

    torch.manual_seed(0)
    pfc = PartialFC(args.embedding, args.classes, s=64.0, m2=0.5)
    opt = torch.optim.SGD(pfc.parameters(), lr=0.1, momentum=0.9)
    n_local = args.batch // world
    x = torch.randn(n_local, args.embedding, requires_grad=True)
    y = torch.randint(0, args.classes, (n_local,))
    saved = {"bytes": 0}
    seen: set[int] = set()

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            saved["bytes"] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = pfc(x, y)
    loss.backward()
    opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    res = {
        "rank": rank, "world": world, "centres": pfc.weight.shape[0],
        "params": nbytes(pfc.parameters()),
        "grads": nbytes(p.grad for p in pfc.parameters()),
        "optimizer": nbytes(v for st in opt.state.values() for v in st.values() if torch.is_tensor(v)),
        "saved": saved["bytes"],
    }
    Path(out, f"w{world}r{rank}.json").write_text(json.dumps(res))
    dist.destroy_process_group()


def formula(classes: int, dim: int, batch: int, world: int, bytes_per: int = 4) -> dict[str, int]:
    """Bytes per rank: centres, their grads, SGD momentum; saved for backward:
    the normalised centres (C/W, D) and ~4 (N, C/W) blocks (cosines, their
    clamp, the margin logits, the softmax)."""
    c = -(-classes // world)
    return {"params": c * dim * bytes_per, "grads": c * dim * bytes_per, "optimizer": c * dim * bytes_per,
            "saved": (c * dim + 4 * batch * c) * bytes_per}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=100_000)
    ap.add_argument("--embedding", type=int, default=512)
    ap.add_argument("--batch", type=int, default=256, help="global batch")
    ap.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--headline", default="1000000,512,1024,8", help="C,D,global batch,W to extrapolate to")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch.multiprocessing as mp

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for world in args.worlds:
            init = f"file://{tmp}/store{world}"
            mp.spawn(_rank, args=(world, args, init, tmp), nprocs=world, join=True)
            rows.append(json.loads(Path(tmp, f"w{world}r0.json").read_text()))
    print(f"partial_fc memory per rank, measured: C={args.classes:,} D={args.embedding} fp32, "
          f"global batch {args.batch}, SGD momentum")
    print(f"{'ranks':>5} {'centres':>9} {'params MB':>10} {'grads MB':>9} {'optim MB':>9} {'saved MB':>9} "
          f"{'total MB':>9} {'vs 1 rank':>9}")
    base = None
    for r in rows:
        total = r["params"] + r["grads"] + r["optimizer"] + r["saved"]
        base = base or total
        print(f"{r['world']:>5} {r['centres']:>9,} {r['params'] / MB:>10.1f} {r['grads'] / MB:>9.1f} "
              f"{r['optimizer'] / MB:>9.1f} {r['saved'] / MB:>9.1f} {total / MB:>9.1f} {total / base:>9.2f}")
        f = formula(args.classes, args.embedding, args.batch, r["world"])
        for k in ("params", "grads", "optimizer"):
            assert r[k] == f[k] or r["world"] * r["centres"] != args.classes, (k, r[k], f[k])
        assert abs(r["saved"] - f["saved"]) <= 0.05 * f["saved"], ("saved", r["saved"], f["saved"])
    c, d, b, w = (int(v) for v in args.headline.split(","))
    print(f"\nextrapolated (formula checked above): C={c:,} D={d} fp32, global batch {b}")
    for world in sorted({1, w}):
        f = formula(c, d, b, world)
        print(f"  {world} rank(s): params {f['params'] / 2**30:.2f} GiB + grads {f['grads'] / 2**30:.2f} GiB "
              f"+ momentum {f['optimizer'] / 2**30:.2f} GiB + logits/cosines ~{f['saved'] / 2**30:.2f} GiB "
              f"= {sum(f.values()) / 2**30:.2f} GiB per rank")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())
