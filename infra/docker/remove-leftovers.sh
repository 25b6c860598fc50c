#!/usr/bin/env bash
# Removes test containers whose test process is gone (a killed run leaves them behind, and
# testcontainers' reaper image cannot be pulled here). Containers of a test run still going, in
# this checkout or another, are left alone.
set -euo pipefail
docker ps -a --filter label=streams.test=1 \
  --format '{{.ID}} {{.Label "streams.test.pid"}}' |
  while read -r id pid; do
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      docker rm -f "$id" >/dev/null
    fi
  done
