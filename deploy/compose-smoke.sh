#!/bin/bash
# make compose-smoke: docker-compose.yml on a private Docker engine, smoke-tested
# (tests/compose_smoke.py), then everything torn down, also on failure.
#
# The engine (Debian's docker.io) runs in a network namespace of its own with no
# route out: nothing in it reaches outside, and the compose stack's host networking
# means that namespace. Its images come from deploy/local-images.sh (Debian
# packages). Needs root.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
export TELECONSULT_SMOKE_CACHE=${TELECONSULT_SMOKE_CACHE:-/var/cache/teleconsult-smoke}
export DOCKER=${DOCKER:-/usr/bin/docker}
IMAGES_TIMEOUT=${IMAGES_TIMEOUT:-1500}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-900}

log() { echo "compose-smoke: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (network namespace, dockerd)"; exit 1; }
for command in dockerd "$DOCKER" docker-compose debootstrap nsenter ip; do
    command -v "$command" >/dev/null || {
        log "missing $command: apt-get install docker.io docker-compose debootstrap"
        exit 1
    }
done

NETNS=teleconsult-smoke-$$
RUN=$(mktemp -d /run/teleconsult-smoke.XXXXXX)
export DOCKER_HOST=unix://$RUN/docker.sock
DOCKERD_PID=""
STEP=engine

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    # The smoke test prints its own FAILED line (exit 1); anything else is said here.
    if [ "$status" != 0 ] && ! { [ "$STEP" = smoke ] && [ "$status" = 1 ]; }; then
        [ "$status" = 124 ] && reason="timed out" || reason="exit $status"
        echo "compose-smoke FAILED at $STEP: $reason"
    fi
    if [ -n "$DOCKERD_PID" ]; then
        # Whatever the smoke test left behind: everything on this engine is ours.
        containers=$("$DOCKER" ps -aq 2>/dev/null || true)
        [ -z "$containers" ] || "$DOCKER" rm -f $containers >/dev/null 2>&1 || true
        "$DOCKER" volume prune -f >/dev/null 2>&1 || true
        kill "$DOCKERD_PID" 2>/dev/null || true
        for _ in $(seq 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$DOCKERD_PID" 2>/dev/null || true
        wait "$DOCKERD_PID" 2>/dev/null || true
    fi
    grep -o " $RUN[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    ip netns delete "$NETNS" 2>/dev/null || true
    rm -rf --one-file-system "$RUN"
    log "engine stopped, namespace $NETNS removed (exit $status, ${SECONDS} s in all)"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip netns add "$NETNS"
ip netns exec "$NETNS" ip link set lo up
# A private address besides loopback, as a host has: coturn refuses to start with
# loopback only. Both ends of the veth pair stay in the namespace: nothing leaves it.
ip netns exec "$NETNS" ip link add smoke0 type veth peer name smoke1
ip netns exec "$NETNS" ip address add 10.200.0.1/24 dev smoke0
ip netns exec "$NETNS" ip link set smoke1 up
ip netns exec "$NETNS" ip link set smoke0 up
mkdir -p "$TELECONSULT_SMOKE_CACHE/docker"
# nsenter only changes the network namespace (ip netns exec would remount /sys and
# hide the cgroup hierarchy dockerd needs).
nsenter --net="/run/netns/$NETNS" -- dockerd --storage-driver=vfs --iptables=false --ip-masq=false --bridge=none \
    --data-root "$TELECONSULT_SMOKE_CACHE/docker" --exec-root "$RUN/exec" \
    --pidfile "$RUN/dockerd.pid" --host "$DOCKER_HOST" >"$RUN/dockerd.log" 2>&1 &
DOCKERD_PID=$!
for _ in $(seq 120); do
    "$DOCKER" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -n 20 "$RUN/dockerd.log" >&2; exit 1; }
    sleep 0.5
done
"$DOCKER" version >/dev/null || { tail -n 20 "$RUN/dockerd.log" >&2; exit 1; }
log "engine up in namespace $NETNS ($("$DOCKER" version --format '{{.Server.Version}}'))"

STEP=images
# The engine has no route out, so it pulls nothing: images from Debian packages.
started=$SECONDS
IMAGES=$(timeout "$IMAGES_TIMEOUT" "$REPO/deploy/local-images.sh")
log "local images ready in $((SECONDS - started)) s"

STEP=smoke
# shellcheck disable=SC2086  # IMAGES is NAME=value words
env $IMAGES timeout "$SMOKE_TIMEOUT" \
    nsenter --net="/run/netns/$NETNS" -- "$PYTHON" -m tests.compose_smoke
