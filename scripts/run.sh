#!/usr/bin/env bash
# run.sh - install what is missing, build, and run the demo: a stand-in llama-server
# (fake-llama) on 127.0.0.1:8090 in the background and llama-gateway on 127.0.0.1:8000
# in the foreground on its embedded default (config/default.json, built into the binary).
# Ctrl-C (or SIGTERM) stops both.
#
#   scripts/run.sh [gateway arguments...]     e.g. scripts/run.sh --port 8001
#
# Environment: GW_CONFIG (a configuration file instead of the embedded default), BUILD_DIR (default build),
# BACKEND_PORT (default 8090; must match the config's upstream).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

config_args=()
[[ -n ${GW_CONFIG:-} ]] && config_args=(--config "$GW_CONFIG")
build=${BUILD_DIR:-build}
backend_port=${BACKEND_PORT:-8090}

bash scripts/install-deps.sh

echo "run.sh: building into $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_SANITIZE=OFF -DGW_TESTS=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target llama-gateway fake-llama >/dev/null

gateway="$build/gateway/llama-gateway"
fake="$build/tests/fake_llama/fake-llama"
"$gateway" --check-config "${config_args[@]}"

backend_pid=
gateway_pid=
backend_log="$build/demo-backend.log"

cleanup() {
    local pid
    for pid in $gateway_pid $backend_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap cleanup EXIT
# Forward Ctrl-C / SIGTERM to the gateway; the EXIT trap then stops the backend.
trap 'if [ -n "$gateway_pid" ]; then kill -TERM "$gateway_pid" 2>/dev/null || true; else exit 130; fi' INT TERM

"$fake" --host 127.0.0.1 --port "$backend_port" --alias demo-backend >"$backend_log" 2>&1 &
backend_pid=$!
for _ in $(seq 1 100); do
    grep -q 'listening on' "$backend_log" 2>/dev/null && break
    if ! kill -0 "$backend_pid" 2>/dev/null; then
        echo "run.sh: the demo backend did not start (is port $backend_port in use?):" >&2
        cat "$backend_log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! grep -q 'listening on' "$backend_log"; then
    echo "run.sh: the demo backend did not report 'listening on' within 10 s" >&2
    cat "$backend_log" >&2
    exit 1
fi
echo "run.sh: demo backend (fake-llama, pid $backend_pid) on 127.0.0.1:$backend_port, log in $backend_log"

"$gateway" "${config_args[@]}" "$@" &
gateway_pid=$!
# wait returns early (status > 128) when a trapped signal arrives; keep waiting until the
# gateway has really exited, and return its status.
rc=0
while kill -0 "$gateway_pid" 2>/dev/null; do
    rc=0
    wait "$gateway_pid" || rc=$?
done
gateway_pid=
exit "$rc"
