#!/usr/bin/env bash
# One short GPU check (H100/H200, torch preinstalled, no network), < 4 minutes:
#   1. AMP training throughput of lresnet50 + arcface, batch 128, 112x112
#      (synthetic random tensors; 5 warm-up + 20 timed steps) in img/s;
#   2. DDP with NCCL through torchrun (--nproc-per-node 1): a few steps of
#      `harness run` with the sharded partial_fc loss, checking the run
#      finished with backend nccl;
#   3. a summary.
#
#   bash benchmarks/gpu_check.sh          # on the GPU machine (repo root or anywhere)
#   bash benchmarks/gpu_check.sh --cpu    # the same script on a CPU (tiny sizes, gloo) — to test it
#
# Installs facebench with `pip install --no-deps --no-build-isolation -e .`
# when `harness` is not importable.  Writes under ${OUT:-/tmp/facebench-gpu-check}.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=cuda
[ "${1:-}" = "--cpu" ] && MODE=cpu
OUTDIR=${OUT:-/tmp/facebench-gpu-check}
mkdir -p "$OUTDIR"
export FACEBENCH_PROGRESS=0 PYTHONUNBUFFERED=1
SUMMARY="$OUTDIR/summary.txt"
: >"$SUMMARY"
note() { echo "$*" | tee -a "$SUMMARY"; }

# `import harness` succeeds from the repo root even when nothing is installed;
# the registry needs the entry points, so check for those.
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'backbones' for e in m.entry_points(group='facebench')) else 1)" 2>/dev/null; then
  echo "== installing facebench (editable, no deps)"
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . || note "INSTALL FAILED"
fi
"$PY" - <<'PYEOF' | tee -a "$SUMMARY"
import importlib, torch
missing = [m for m in ("numpy", "scipy", "sklearn", "pluggy", "click", "jinja2", "yaml", "tqdm", "filelock", "cv2")
           if importlib.util.find_spec(m) is None]
print(f"torch {torch.__version__}, cuda {torch.version.cuda}, devices: "
      f"{[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}")
print("missing python modules: " + (", ".join(missing) if missing else "none"))
PYEOF

echo "== 1. AMP throughput: lresnet50 + arcface"
timeout 150 "$PY" - "$MODE" <<'PYEOF' 2>&1 | tee "$OUTDIR/throughput.log" | grep -E "RESULT|Error|error" | tee -a "$SUMMARY"
import sys, time, torch
from harness.registry import get_registry
mode = sys.argv[1]
cuda = mode == "cuda"
dev = torch.device("cuda" if cuda else "cpu")
# --cpu only checks that the script works: tiny input, fp32
batch, warm, timed, size = (128, 5, 20, 112) if cuda else (4, 1, 2, 32)
reg = get_registry()
torch.manual_seed(0)
model = reg.build("backbone", "lresnet50", {} if cuda else {"input_size": f"{size},{size}"}).to(dev)
loss_fn = reg.build("loss", "arcface", {}, embedding_size=512, num_classes=10_000).to(dev)
if cuda:
    model = model.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = True
opt = torch.optim.SGD([*model.parameters(), *loss_fn.parameters()], lr=0.1, momentum=0.9, weight_decay=5e-4)
dtype = torch.bfloat16 if cuda else None
x = torch.randn(batch, 3, size, size, device=dev)
if cuda:
    x = x.contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10_000, (batch,), device=dev)
def step():
    with torch.autocast(dev.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        emb = model(x)
    loss = loss_fn(emb.float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss
for _ in range(warm):
    step()
if cuda: torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(timed):
    loss = step()
if cuda: torch.cuda.synchronize()
dt = time.perf_counter() - t
mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
print(f"RESULT throughput lresnet50+arcface {'AMP bf16' if dtype else 'fp32'} {size}x{size} batch {batch}: {batch * timed / dt:.1f} img/s "
      f"({1000 * dt / timed:.1f} ms/step, peak {mem:.1f} GiB, loss {float(loss.detach()):.3f}, device {dev})")
PYEOF
[ "${PIPESTATUS[0]}" = 0 ] || note "throughput: FAILED (see $OUTDIR/throughput.log)"

echo "== 2. DDP through torchrun --nproc-per-node 1 ($([ "$MODE" = cuda ] && echo NCCL || echo gloo))"
REPORTS="$OUTDIR/reports"
rm -rf "$REPORTS"
if [ "$MODE" = cuda ]; then
  ARGS=(--backbone mobilefacenet --loss partial_fc --max-steps 20 --batch-size 128 --device cuda)
else
  ARGS=(--backbone resnet20 --loss partial_fc -o resnet20.input_size=32,32 -o synthetic.size=32
        -o synthetic.train_identities=4 -o synthetic.test_identities=10 -o synthetic.images_per_identity=4
        -o synthetic.pairs_per_fold=10 --max-steps 2 --batch-size 8 --device cpu)
fi
t0=$SECONDS
timeout 200 harness run "${ARGS[@]}" --nproc-per-node 1 --reports "$REPORTS" >"$OUTDIR/ddp.log" 2>&1
rc=$?
"$PY" - "$REPORTS" "$rc" "$((SECONDS - t0))" <<'PYEOF' | tee -a "$SUMMARY"
import json, sys, pathlib
reports, rc, secs = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
found = list((reports / "runs").glob("*/results.json")) if (reports / "runs").exists() else []
if not found:
    print(f"RESULT ddp: FAILED (exit {rc}, no results.json; see ddp.log)")
    sys.exit()
r = json.loads(found[0].read_text())
tr = r.get("sections", {}).get("training", {})
acc = next((m["value"] for m in r.get("metrics", []) if m["name"] == "accuracy"), None)
print(f"RESULT ddp: exit {rc}, status {r['status']}, {r['provenance'].get('distributed')}, "
      f"steps {tr.get('steps')}, {tr.get('img_per_s')} img/s, device {tr.get('device')}, "
      f"accuracy {acc}, {secs} s" + (f", error: {r.get('error')}" if r.get("error") else ""))
PYEOF
[ "$rc" = 0 ] || tail -20 "$OUTDIR/ddp.log"

echo
echo "================ summary ================"
cat "$SUMMARY"
