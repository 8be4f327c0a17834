#!/usr/bin/env bash
# Stop the dockerd that .ci/docker-up.sh started (and its test containers). Idempotent.
set -uo pipefail
DOCKER_PIDFILE=${DOCKER_PIDFILE:-/tmp/aftershock-dockerd.pid}
if docker info >/dev/null 2>&1; then
  ids=$(docker ps -aq --filter label=aftershock-test)
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
fi
if [ -f "$DOCKER_PIDFILE" ]; then
  pid=$(cat "$DOCKER_PIDFILE")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$DOCKER_PIDFILE"
fi
echo "dockerd stopped"
