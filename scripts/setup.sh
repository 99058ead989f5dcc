#!/usr/bin/env bash
# Installs the Debian packages protogen needs to build and test, skipping what is present.
# Usage: scripts/setup.sh [extra-package ...]
set -euo pipefail

# swaks: examples/smtp is tested with it; curl, apache2-utils (ab) and wrk: examples/http; graphviz: the diagrams of the specs'
# states (protogen_generate's DIAGRAMS) render to SVG with its dot.
# redis-server, redis-tools: examples/resp is held against a real redis-server
# (replies byte for byte, redis-cli, redis-benchmark); libhiredis-dev: the bench
# compares the RESP framer with hiredis' reader. libssl-dev, openssl: the TLS
# layer (runtime/core/tls.c) and the certificates its tests make. liburing-dev: the
# loop's io_uring backend (optional at build time; without it, epoll only).
packages=(build-essential clang cmake make re2c python3 python3-jinja2 libcmocka-dev pkg-config socat libuv1-dev valgrind
          libssl-dev openssl liburing-dev
          redis-server redis-tools libhiredis-dev swaks curl apache2-utils wrk graphviz "$@")

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "protogen setup: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "protogen setup: need root or sudo to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

# Debian's redis-server package starts a redis-server on port 6379 when it is
# installed (and at every boot). protogen's tests start their own on free
# loopback ports and need none: stop and disable the one just installed.
if [[ " ${missing[*]} " == *" redis-server "* ]]; then
    if [ -d /run/systemd/system ]; then
        "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/redis-server ]; then
        "${sudo[@]}" /etc/init.d/redis-server stop >/dev/null 2>&1 || true
        "${sudo[@]}" update-rc.d redis-server disable >/dev/null 2>&1 || true
    fi
    echo "protogen setup: the redis-server service the package starts is stopped and disabled (the tests run their own)"
fi

# nginx-light (the HTTP benchmark's reference) starts nginx on port 80 when it is
# installed: the bench runs its own on a free loopback port.
if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    if [ -d /run/systemd/system ]; then
        "${sudo[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/nginx ]; then
        "${sudo[@]}" /etc/init.d/nginx stop >/dev/null 2>&1 || true
        "${sudo[@]}" update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
    echo "protogen setup: the nginx service the package starts is stopped and disabled (the bench runs its own)"
fi
