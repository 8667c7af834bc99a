#!/usr/bin/env bash
# A private Docker engine for CI and local checks, and the facebench image.
#
#   docker/ci_engine.sh start        install docker.io + debootstrap when missing,
#                                    start dockerd in the background; prints DOCKER_HOST=...
#   docker/ci_engine.sh build        make the base image (debootstrap + docker import),
#                                    the host wheelhouse, and build the image offline
#   docker/ci_engine.sh stop         stop that dockerd (by its PID) and its containers
#   docker/ci_engine.sh run CMD...   start + build, run CMD with DOCKER_HOST set, stop on exit
#
# The daemon gets its own --data-root, --exec-root, socket and pidfile, and
# `--bridge=none --iptables=false`: it makes no private-range network, so
# containers run with `--network none`.  No registry is reachable, so the base
# image is a debootstrap'd Debian bookworm (minbase + python3, python3-venv)
# imported with `docker import`, and pip inside the build installs offline
# from a wheelhouse prepared on the host (bookworm's python3 is 3.11, like
# the host's, so host wheels fit).  torch==2.13.0 is the local CPU wheel.
#
# Environment:
#   FACEBENCH_DOCKER_CACHE  cache of the base rootfs tarball and the wheelhouse
#                           (default ${XDG_CACHE_HOME:-$HOME/.cache}/facebench-docker);
#                           a second run reuses them.
#   FACEBENCH_DOCKER_STATE  daemon state: socket, pidfile, data-root, exec-root, log
#                           (default /tmp/facebench-dockerd).
#   FACEBENCH_IMAGE         image tag (default facebench).
#   FACEBENCH_BASE_IMAGE    base tag (default facebench-base:bookworm).
#   FACEBENCH_DLIB=1        also put dlib-bin into the image (off: keeps the CI image lean).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${FACEBENCH_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/facebench-docker}
STATE=${FACEBENCH_DOCKER_STATE:-/tmp/facebench-dockerd}
IMAGE=${FACEBENCH_IMAGE:-facebench}
BASE=${FACEBENCH_BASE_IMAGE:-facebench-base:bookworm}
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/docker.pid"
export DOCKER_HOST="unix://$SOCK"
export DOCKER_BUILDKIT=0

say() { echo "[ci_engine] $*" >&2; }
die() { say "error: $*"; exit 1; }

engine_up() { [ -S "$SOCK" ] && docker version >/dev/null 2>&1; }

install_tools() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} yourself"
  say "installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

cmd_start() {
  install_tools
  mkdir -p "$STATE"
  if engine_up; then
    say "engine already answers at $DOCKER_HOST"
    echo "DOCKER_HOST=$DOCKER_HOST"
    return 0
  fi
  rm -f "$SOCK" "$PIDFILE"
  say "starting dockerd (data-root $STATE/data, log $STATE/dockerd.log)"
  # setsid: the daemon outlives this script (stop it with `ci_engine.sh stop`).
  setsid dockerd \
    --data-root "$STATE/data" \
    --exec-root "$STATE/exec" \
    --host "unix://$SOCK" \
    --pidfile "$PIDFILE" \
    --bridge=none --iptables=false --ip6tables=false \
    >"$STATE/dockerd.log" 2>&1 < /dev/null &
  local pid=$!
  for _ in $(seq 1 120); do
    if engine_up; then
      say "engine up (pid $pid) at $DOCKER_HOST"
      echo "DOCKER_HOST=$DOCKER_HOST"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd exited during start"; }
    sleep 0.5
  done
  tail -20 "$STATE/dockerd.log" >&2
  kill "$pid" 2>/dev/null || true
  die "dockerd did not answer within 60 s"
}

cmd_stop() {
  [ -f "$PIDFILE" ] || { say "no pidfile at $PIDFILE: nothing to stop"; return 0; }
  local pid
  pid=$(cat "$PIDFILE")
  if engine_up; then
    local ids
    ids=$(docker ps -q) || true
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
  fi
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { say "dockerd $pid ignores SIGTERM; sending SIGKILL"; kill -9 "$pid"; }
  fi
  rm -f "$PIDFILE" "$SOCK"
  say "dockerd $pid stopped"
}

make_base() {
  if docker image inspect "$BASE" >/dev/null 2>&1; then return 0; fi
  mkdir -p "$CACHE"
  local tarball="$CACHE/bookworm-minbase.tar"
  if [ ! -s "$tarball" ]; then
    local root
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    say "debootstrap bookworm minbase (+python3, python3-venv) into $root"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$root" http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$root"; die "debootstrap failed"; }
    # Lean: drop apt lists, docs and caches from the rootfs.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
      "$root"/usr/share/man/* "$root"/usr/share/locale/*
    tar -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  say "docker import $tarball as $BASE"
  docker import "$tarball" "$BASE" >/dev/null
}

make_wheelhouse() {
  local wh="$CACHE/wheelhouse"
  local stamp="$wh/.complete-${FACEBENCH_DLIB:-0}"
  [ -f "$stamp" ] && return 0
  mkdir -p "$wh"
  local py=${PYTHON:-python3}
  local pkgs=(torch==2.13.0 "numpy>=1.24" "scipy>=1.10" "scikit-learn>=1.3" "pluggy>=1.3" "click>=8.1"
              "jinja2>=3.1" "pyyaml>=6" "tqdm>=4.66" "filelock>=3.12" "opencv-python-headless>=4.8,<5"
              "setuptools>=68" wheel)
  [ "${FACEBENCH_DLIB:-0}" = 1 ] && pkgs+=("dlib-bin>=19.24" "face-recognition-models>=0.3.0")
  say "filling the wheelhouse $wh (python $("$py" -c 'import sys; print(sys.version.split()[0])'))"
  "$py" -m pip download -q --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d "$wh" "${pkgs[@]}" \
    || "$py" -m pip download -q -d "$wh" "${pkgs[@]}"
  touch "$stamp"
}

cmd_build() {
  engine_up || die "no engine answers at $DOCKER_HOST: run '$0 start' first"
  make_base
  make_wheelhouse
  # The build context: the recipe, the package sources and the wheelhouse
  # (docker/wheelhouse/ inside the context switches the Dockerfile to offline installs).
  local ctx
  ctx=$(mktemp -d /tmp/facebench-context.XXXXXX)
  trap 'rm -rf "$ctx"' RETURN
  cp -r "$REPO/Dockerfile.gpu" "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/harness" "$REPO/plugins" "$ctx/"
  mkdir -p "$ctx/docker"
  cp "$REPO"/docker/entrypoint.sh "$ctx/docker/"
  find "$ctx" -name '__pycache__' -prune -exec rm -rf {} +
  mkdir -p "$ctx/docker/wheelhouse"
  cp "$CACHE"/wheelhouse/*.whl "$ctx/docker/wheelhouse/" 2>/dev/null || ln "$CACHE"/wheelhouse/*.whl "$ctx/docker/wheelhouse/"
  local t0=$SECONDS
  say "building $IMAGE from $BASE (offline, legacy builder)"
  docker build --network none -f "$ctx/Dockerfile.gpu" -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE" --build-arg INSTALL_TF=0 \
    --build-arg INSTALL_DLIB="${FACEBENCH_DLIB:-0}" --build-arg EXTRAS=torch \
    --build-arg TORCH_SPEC=torch==2.13.0 "$ctx" >"$STATE/build.log" 2>&1 \
    || { tail -30 "$STATE/build.log" >&2; die "docker build failed (log: $STATE/build.log)"; }
  local size
  size=$(docker image inspect "$IMAGE" --format '{{.Size}}')
  say "built $IMAGE in $((SECONDS - t0)) s, $((size / 1000000)) MB"
  echo "IMAGE=$IMAGE BUILD_S=$((SECONDS - t0)) SIZE_BYTES=$size"
}

cmd_run() {
  trap cmd_stop EXIT
  cmd_start >/dev/null
  cmd_build >/dev/null
  "$@"
}

case "${1:-}" in
  start) cmd_start ;;
  build) cmd_build ;;
  stop) cmd_stop ;;
  run) shift; cmd_run "$@" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
