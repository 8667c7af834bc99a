#!/bin/sh
# Entrypoint of the facebench image: every argument goes to `harness`.
#   docker run facebench                  -> harness run --reports /reports (the default job)
#   docker run facebench list backbone    -> harness list backbone
# When the container runs as a uid without a home (`--user UID:GID`, as
# `harness run --docker` does), HOME points at a writable place so caches work.
set -e
if [ ! -w "${HOME:-/nonexistent}" ]; then
  export HOME=/tmp
fi
exec harness "$@"
