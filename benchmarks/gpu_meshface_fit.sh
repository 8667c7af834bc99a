#!/usr/bin/env bash
# Train the meshface inpainters on one GPU: every (net, cross-fit fold group) pair
# at once, each process with its own mesh-generating workers, for a fixed time.
#
#   python benchmarks/bench_meshface.py --folds 10 --prepare-train .devdata/chips   # here, on a CPU
#   cp ../shared/data/weights/mobilefacenet/068.ckpt .devdata/weights/mobilefacenet/  # identity net
#   bash benchmarks/gpu_meshface_fit.sh .devdata/chips OUT_DIR [SECONDS] [WIDTH]       # on the GPU
#
# .devdata is a git-excluded folder carried to the GPU machine (FACEBENCH_DATA
# points there for the frozen MobileFaceNet of demeshnet's identity loss).
# Writes OUT_DIR/{demeshnet,multitask_convnet}-foldsA-...pt and fit-*.log.
set -uo pipefail
cd "$(dirname "$0")/.."
CHIPS=${1:?chips folder from --prepare-train}
OUTDIR=${2:?output folder}
SECONDS_PER_NET=${3:-300}
WIDTH=${4:-32}
PY=${PYTHON:-python3}
export FACEBENCH_DATA=${FACEBENCH_DATA:-$PWD/.devdata} FACEBENCH_PROGRESS=0 PYTHONUNBUFFERED=1
mkdir -p "$OUTDIR"
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if any(e.name == 'inpainters' for e in m.entry_points(group='facebench')) else 1)" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$OUTDIR/install.log" 2>&1 || echo "INSTALL FAILED"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
pids=()
for chips in "$CHIPS"/folds*.npz; do
  for net in demeshnet multitask_convnet; do
    "$PY" benchmarks/bench_meshface.py --fit-from "$chips" --inpainters "$net" --out "$OUTDIR" \
      --steps 20000 --time-budget "$SECONDS_PER_NET" --workers 3 \
      -o "$net.width=$WIDTH" -o "$net.batch_size=32" -o "$net.patch=0" -o "$net.device=cuda" \
      >"$OUTDIR/fit-$net-$(basename "$chips" .npz).log" 2>&1 &
    pids+=($!)
  done
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
tail -n 3 "$OUTDIR"/fit-*.log
nvidia-smi --query-gpu=memory.used --format=csv,noheader
exit $rc
