#!/usr/bin/env bash
# Install everything the tests need, then run them.  This is the README's
# test command and exactly what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
exec python3 -m pytest "$@"
