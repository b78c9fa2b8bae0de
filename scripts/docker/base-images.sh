#!/usr/bin/env bash
# The two base images the compose stack names: python:3.11-slim (both Dockerfiles) and redis:7-alpine.
#
# For each: `docker pull` first, and the real image is used whenever a pull works. When Docker Hub
# cannot be reached, a tag that is already in the engine is kept (a real image pulled earlier or a
# stand-in built earlier); otherwise a local stand-in is built from Debian bookworm packages with
# debootstrap (root only) and tagged with the same name:
#
#   python:3.11-slim  Debian's python3 (3.11, as in the real image), pip, ca-certificates; the host's
#                     CA bundle is copied in (pip inside the builds must trust what the host trusts),
#                     the EXTERNALLY-MANAGED marker is removed (pip installs as root, like the real
#                     image), /usr/local/bin/python -> /usr/bin/python3.
#   redis:7-alpine    Debian's redis-server (7.0) and redis-cli; protected mode off (as in the official
#                     image: the other containers reach it over the compose network), WORKDIR /data.
#
# Stand-ins carry the label org.smolvlm2.standin=1 (`docker image inspect` shows it).
# Env: DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR (default: the host's own apt sources; no mirror is written here:
#      without one in the host's sources, DEBIAN_MIRROR is required), PULL_TIMEOUT_S (default 300),
#      FORCE_STANDIN=1 (skip the pull, rebuild the stand-ins).
set -euo pipefail

PULL_TIMEOUT_S="${PULL_TIMEOUT_S:-300}"
SUITE=bookworm
LABEL=org.smolvlm2.standin

say() { echo "[base-images] $*" >&2; }
die() { say "ОШИБКА: $*"; exit 1; }

have() { docker image inspect "$1" >/dev/null 2>&1; }
is_standin() { [[ $(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null) == 1 ]]; }

# host_mirror <archive>: the first URI of the host's apt sources (deb822 .sources, then one-line .list; APT_DIR,
# default /etc/apt) whose path ends in /<archive> (debian, debian-security); empty if there is none.
host_mirror() {
    local archive="$1" apt="${APT_DIR:-/etc/apt}" uri
    uri="$(grep -hsE '^URIs:' "$apt"/sources.list.d/*.sources | awk '{print $2}' | grep -E "/$archive/?\$" \
        | head -n1 || true)"
    [[ -n $uri ]] || uri="$(grep -hsE '^deb\s' "$apt"/sources.list "$apt"/sources.list.d/*.list \
        | sed -E 's/^deb\s+(\[[^]]*\]\s+)?//' | awk '{print $1}' | grep -E "/$archive/?\$" | head -n1 || true)"
    echo "${uri%/}"
}

MIRROR="${DEBIAN_MIRROR:-$(host_mirror debian)}"
MIRROR="${MIRROR%/}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$(host_mirror debian-security)}"
SECURITY_MIRROR="${SECURITY_MIRROR%/}"

need_debootstrap() {
    [[ $(id -u) == 0 ]] || die "Docker Hub недоступен, а собрать замену базового образа (debootstrap) может только root"
    [[ -n $MIRROR ]] || die "Docker Hub недоступен, а в источниках apt этой машины нет зеркала Debian: задайте DEBIAN_MIRROR (адрес архива …/debian)"
    command -v debootstrap >/dev/null && return 0
    command -v apt-get >/dev/null || die "Docker Hub недоступен, а debootstrap не установлен и нет apt-get"
    say "installing debootstrap (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null; } \
        || die "apt-get install debootstrap не удался"
}

# rootfs <dir> <packages>: a minimal Debian bookworm with those packages and the image's apt sources.
rootfs() {
    local dir="$1" include="$2"
    say "debootstrap $SUITE ($include) from $MIRROR"
    debootstrap --variant=minbase --include="$include" "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 \
        || die "debootstrap не удался: $(tail -n 5 "$dir.log" | tr '\n' ' ')"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$dir/etc/apt/sources.list"
    if [[ -n $SECURITY_MIRROR ]]; then
        printf 'deb %s %s-security main\n' "$SECURITY_MIRROR" "$SUITE" >>"$dir/etc/apt/sources.list"
    else
        say "no security archive in the host's apt sources (DEBIAN_SECURITY_MIRROR): the image's apt lists without it"
    fi
    # Trust what the host trusts (a TLS-inspecting proxy's CA included): pip and apt inside builds.
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    fi
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
}

# import <dir> <tag> <docker import -c changes...>
import_rootfs() {
    local dir="$1" tag="$2"; shift 2
    local changes=(-c "LABEL $LABEL=1" -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin' \
                   -c 'ENV LANG=C.UTF-8')
    for c in "$@"; do changes+=(-c "$c"); done
    tar -C "$dir" -c . | docker import "${changes[@]}" - "$tag" >/dev/null
    say "$tag: stand-in built ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build_python() {
    local dir="$WORK/python"
    rootfs "$dir" ca-certificates,python3,python3-pip,python3-venv
    rm -f "$dir"/usr/lib/python3*/EXTERNALLY-MANAGED
    ln -sf /usr/bin/python3 "$dir/usr/local/bin/python"
    ln -sf /usr/bin/pip3 "$dir/usr/local/bin/pip"
    import_rootfs "$dir" python:3.11-slim 'CMD ["python3"]'
}

build_redis() {
    local dir="$WORK/redis"
    rootfs "$dir" ca-certificates,redis-server
    # The official image runs without protected mode; otherwise the other containers are refused
    # ("DENIED Redis is running in protected mode").
    cat >"$dir/usr/local/bin/redis-server" <<'WRAPPER'
#!/bin/sh
exec /usr/bin/redis-server "$@" --protected-mode no
WRAPPER
    chmod 755 "$dir/usr/local/bin/redis-server"
    mkdir -p "$dir/data"
    import_rootfs "$dir" redis:7-alpine 'WORKDIR /data' 'EXPOSE 6379' 'CMD ["redis-server"]'
}

ensure() {
    local tag="$1" builder="$2"
    if [[ ${FORCE_STANDIN:-0} != 1 ]]; then
        if timeout "$PULL_TIMEOUT_S" docker pull -q "$tag" >"$WORK/pull.log" 2>&1; then
            say "$tag: pulled from the registry (the real image)"
            return 0
        fi
        if have "$tag"; then
            say "$tag: pull failed ($(tail -n1 "$WORK/pull.log" | cut -c1-120)); using the local $(is_standin "$tag" && echo stand-in || echo image)"
            return 0
        fi
        say "$tag: pull failed ($(tail -n1 "$WORK/pull.log" | cut -c1-120)); building a stand-in"
    fi
    need_debootstrap
    "$builder"
}

WORK="$(mktemp -d /tmp/smolvlm2-base.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ensure python:3.11-slim build_python
ensure redis:7-alpine build_redis
