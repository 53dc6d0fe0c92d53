#!/bin/bash
# Builds, on the Docker engine at $DOCKER_HOST, the images docker-compose.yml can
# use where Docker Hub cannot be reached, from Debian packages only:
#
#   teleconsult/debian-base:bookworm        debootstrap --variant=minbase, docker import
#   teleconsult/python:3.11-bookworm-<deps> Debian's python3.11, a venv on PATH, the
#                                           runtime libraries, and a wheelhouse of the
#                                           project's dependencies (pip reads only it)
#   teleconsult/redis:bookworm              Debian's redis-server
#   teleconsult/coturn:bookworm             Debian's coturn
#
# The last three with bookworm-updates and bookworm-security applied. Image builds
# on that engine have no network (it lives in a network namespace with no route
# out), so packages are installed in a chroot here, then imported. An image that
# already exists is kept: a second run builds nothing (remove $CACHE, or the
# images, to pick up new Debian updates). The minbase root filesystem is also
# kept as a tarball in $CACHE.
#
# Prints the environment compose needs, e.g. TELECONSULT_PYTHON_IMAGE=...
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${TELECONSULT_SMOKE_CACHE:-/var/cache/teleconsult-smoke}
DOCKER=${DOCKER:-/usr/bin/docker}
SUITE=bookworm
BASE_IMAGE=teleconsult/debian-base:$SUITE
REDIS_IMAGE=teleconsult/redis:$SUITE
COTURN_IMAGE=teleconsult/coturn:$SUITE

log() { echo "local-images: $*" >&2; }

# The Debian mirror apt already uses (deb822 sources or the one-line format).
mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)
    echo "${DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

security_mirror() {
    local uri
    uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/debian.sources | awk '{print $2}' | grep security | head -n1 || true)
    [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep security | head -n1 || true)
    echo "${DEBIAN_SECURITY_MIRROR:-${uri:-http://deb.debian.org/debian-security}}"
}

exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

WORK=""
cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        # proc here, or what debootstrap left mounted if it failed.
        grep -o " $WORK/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT

TARBALL=$CACHE/debian-$SUITE-minbase.tar
base_tarball() {
    local tarball=$TARBALL
    if [ ! -s "$tarball" ]; then
        log "debootstrap --variant=minbase $SUITE from $(mirror)"
        WORK=$(mktemp -d "$CACHE/rootfs.XXXXXX")
        chmod 755 "$WORK"  # the image's / (mktemp makes it 0700)
        debootstrap --variant=minbase "$SUITE" "$WORK" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
            || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
        rm -rf "$WORK"/var/cache/apt/archives/*.deb "$WORK"/var/lib/apt/lists/*
        tar -C "$WORK" --numeric-owner -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
        cleanup
        WORK=""
    fi
}

# chroot_image NAME PACKAGES SETUP [--change ...]: the minbase tree plus PACKAGES
# (apt, in a chroot), then SETUP (a shell snippet run in the chroot), imported as NAME.
chroot_image() {
    local name=$1 packages=$2 setup=$3
    shift 3
    exists "$name" && { log "$name: kept"; return; }
    base_tarball
    log "$name: apt-get install $packages"
    WORK=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    tar -C "$WORK" -xf "$TARBALL"  # also gives / its mode
    cp /etc/resolv.conf "$WORK/etc/resolv.conf"
    # The host's CA bundle, for pip behind a TLS-inspecting proxy; removed below.
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/tmp/host-ca.crt"
    printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d"  # start no service
    chmod +x "$WORK/usr/sbin/policy-rc.d"
    # With the point-release and security updates, applied below.
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
        "$(mirror)" "$SUITE" "$(mirror)" "$SUITE" "$(security_mirror)" "$SUITE" \
        >"$WORK/etc/apt/sources.list"
    mount -t proc proc "$WORK/proc"
    chroot "$WORK" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        PIP_CERT=/tmp/host-ca.crt ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} \
        sh -euc "apt-get update -qq && apt-get upgrade -y -qq >/dev/null
                 apt-get install -y -qq --no-install-recommends $packages >/dev/null
                 $setup
                 apt-get clean && rm -rf /var/lib/apt/lists/*" >"$CACHE/chroot.log" 2>&1 \
        || { tail -n 30 "$CACHE/chroot.log" >&2; exit 1; }
    umount "$WORK/proc"
    rm -f "$WORK/usr/sbin/policy-rc.d" "$WORK/tmp/host-ca.crt"
    : >"$WORK/etc/resolv.conf"
    tar -C "$WORK" --numeric-owner -c . | "$DOCKER" import "$@" - "$name" >/dev/null
    cleanup
    WORK=""
    log "$name: built"
}

mkdir -p "$CACHE"

if ! exists "$BASE_IMAGE"; then
    base_tarball
    "$DOCKER" import --change 'CMD ["bash"]' "$TARBALL" "$BASE_IMAGE" >/dev/null
    log "$BASE_IMAGE: imported"
fi

# The wheelhouse follows pyproject.toml: a new dependency makes a new image.
REQUIREMENTS=$(python3 - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join(project["build-system"]["requires"] + ["wheel"] + project["project"]["dependencies"]))
EOF
)
DEPS_HASH=$(printf '%s' "$REQUIREMENTS" | sha256sum | cut -c1-12)
PYTHON_IMAGE=teleconsult/python:3.11-$SUITE-$DEPS_HASH
REQUIREMENTS_ARGS=$(printf '%s\n' "$REQUIREMENTS" | sed "s/.*/'&'/" | tr '\n' ' ')

chroot_image "$PYTHON_IMAGE" "python3.11 python3.11-venv libopus0 libvpx7 libsrtp2-1" \
    "python3.11 -m venv /opt/venv
     /opt/venv/bin/pip download --quiet --disable-pip-version-check --dest /wheels $REQUIREMENTS_ARGS" \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_NO_INDEX=1' \
    --change 'ENV PIP_FIND_LINKS=/wheels' \
    --change 'ENV PIP_DISABLE_PIP_VERSION_CHECK=1' \
    --change 'CMD ["python"]'

chroot_image "$REDIS_IMAGE" "redis-server" \
    "mkdir -p /data && chown redis:redis /data" \
    --change 'USER redis' \
    --change 'WORKDIR /data' \
    --change 'VOLUME /data' \
    --change 'CMD ["redis-server"]'

chroot_image "$COTURN_IMAGE" "coturn" \
    "getent passwd turnserver >/dev/null" \
    --change 'USER turnserver' \
    --change 'ENTRYPOINT ["turnserver"]'

echo "TELECONSULT_PYTHON_IMAGE=$PYTHON_IMAGE"
echo "TELECONSULT_REDIS_IMAGE=$REDIS_IMAGE"
echo "TELECONSULT_COTURN_IMAGE=$COTURN_IMAGE"
