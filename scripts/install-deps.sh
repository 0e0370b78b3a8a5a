#!/usr/bin/env bash
# install-deps.sh - install the Debian 12 packages that llama-gateway needs, and only the
# missing ones. Quiet and idempotent: when everything is present it prints nothing.
#
#   scripts/install-deps.sh          build + run: compiler, CMake, libraries, curl
#   scripts/install-deps.sh --test   also the test tools: Node.js + npm (e2e tests with the
#                                    openai SDK), python3, clang + libclang-rt-14-dev (fuzzing)
#
# Runs as root (apt-get directly) or, when not root, through sudo if there is one.
set -euo pipefail

want_test=0
for arg in "$@"; do
    case "$arg" in
    --test) want_test=1 ;;
    -h | --help)
        sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown argument '$arg' (expected --test)" >&2
        exit 2
        ;;
    esac
done

# libc6-dev is only a Recommends of gcc, and we install without recommends.
build_pkgs=(gcc libc6-dev make cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev
    libjansson-dev libssl-dev check python3 curl ca-certificates)
test_pkgs=(python3 clang libclang-rt-14-dev)

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
add_missing() {
    local p
    for p in "$@"; do
        installed "$p" || missing+=("$p")
    done
}

add_missing "${build_pkgs[@]}"
if [ "$want_test" = 1 ]; then
    add_missing "${test_pkgs[@]}"
    # Node.js may come from Debian (nodejs 18 + the separate npm package) or from another
    # source whose nodejs package bundles npm and conflicts with Debian's npm. Any node
    # and npm on PATH will do; only when one is absent do we install Debian's.
    if ! command -v node >/dev/null 2>&1 && ! installed nodejs; then
        missing+=(nodejs)
    fi
    if ! command -v npm >/dev/null 2>&1; then
        missing+=(npm)
    fi
fi

[ "${#missing[@]}" -eq 0 ] && exit 0

# de-duplicate, keeping order
declare -A seen=()
pkgs=()
for p in "${missing[@]}"; do
    [ -n "${seen[$p]:-}" ] && continue
    seen[$p]=1
    pkgs+=("$p")
done

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-deps.sh: missing packages (${pkgs[*]}) and not root; run as root" >&2
        exit 1
    fi
fi

echo "install-deps.sh: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get -q update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y \
    --no-install-recommends "${pkgs[@]}"
