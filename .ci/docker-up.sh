#!/usr/bin/env bash
# Start a local dockerd for the container-fault tests (run as root; idempotent).
# - installs Debian's docker.io and busybox-static if missing
# - dockerd: vfs storage, no default bridge (--bridge=none), no iptables; log in $DOCKER_LOG
# - builds the test image `aftershock-busybox:latest` with `docker import` (no registry)
set -euo pipefail
DOCKER_LOG=${DOCKER_LOG:-/tmp/aftershock-dockerd.log}
DOCKER_PIDFILE=${DOCKER_PIDFILE:-/tmp/aftershock-dockerd.pid}
IMAGE=${AFTERSHOCK_TEST_IMAGE:-aftershock-busybox:latest}

if ! command -v dockerd >/dev/null || ! [ -x /bin/busybox ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q docker.io busybox-static
fi

if ! docker info >/dev/null 2>&1; then
  nohup dockerd --storage-driver=vfs --bridge=none --iptables=false --ip6tables=false \
    --pidfile "$DOCKER_PIDFILE" >"$DOCKER_LOG" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not come up within 60s; last lines of $DOCKER_LOG:" >&2
    tail -n 30 "$DOCKER_LOG" >&2
    exit 1
  fi
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh sleep nc httpd kill ls cat echo true; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . | docker import - "$IMAGE" >/dev/null
fi
echo "dockerd ready; test image $IMAGE"
