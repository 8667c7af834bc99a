#!/usr/bin/env bash
# Install facebench with every framework extra on a fresh machine.
#   bash scripts/setup.sh          # runtime extras (torch, dlib, onnx, report, image)
#   bash scripts/setup.sh dev      # plus the test tools and the example plugin
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# torch first, pinned: a bare `torch` requirement pulls a multi-GB CUDA build
# on a CPU-only machine, while torch==2.13.0 comes from the local CPU wheel.
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==${FACEBENCH_TORCH_VERSION:-2.13.0}"
fi

extras="all"
if [ "${1:-}" = "dev" ]; then extras="all,dev"; fi
"$PY" -m pip install -q -e ".[${extras}]"

if [ "${1:-}" = "dev" ]; then
  # The reference MTCNN the tests compare against.  --no-deps: its pins
  # (torch<2.3, torchvision) break modern stacks; the tests stand in for the
  # one torchvision op it uses.
  "$PY" -m pip install -q --no-deps "facenet-pytorch==2.6.0"
  # Chromium checks the HTML reports for real (headless).
  if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
    else
      echo "warning: chromium not found and apt-get unavailable; report browser tests will skip" >&2
    fi
  fi
fi
