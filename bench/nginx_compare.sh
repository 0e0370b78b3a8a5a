#!/usr/bin/env bash
# bench/nginx_compare.sh - the gateway next to nginx (proxy_pass, proxy_buffering off,
# upstream keepalive) in front of the same bench backend, same client, one run.
#
# Builds like run.sh (build-bench/), installs Debian's nginx-light if nginx is missing,
# binds 127.0.0.1 only, stops what it started (by PID). Prints one line per target and
# shape: requests/s and p50 for small non-stream requests at 1 and 64 connections, and the
# SSE per-event delay p50/p99 at 64 and 512 streams. Usage: bench/nginx_compare.sh [--no-build]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$ROOT/build-bench
if [[ ${1:-} != --no-build ]]; then
    cmake -S "$ROOT" -B "$B" -DCMAKE_BUILD_TYPE=Release -DGW_WERROR=OFF >/dev/null &&
        cmake --build "$B" -j2 --target llama-gateway loadgen sse_backend >/dev/null || exit 1
fi
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null || exit 1
T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; [[ -f $T/nginx.pid ]] && kill "$(cat "$T/nginx.pid")" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
LG=$B/bench/loadgen
BE_PORT=$($LG port); NGX_PORT=$($LG port); GW_PORT=$($LG port)
"$B/bench/sse_backend" --port "$BE_PORT" >"$T/be.log" 2>&1 & PIDS+=($!)
cat >"$T/nginx.conf" <<NGX
worker_processes 2;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  upstream be { server 127.0.0.1:$BE_PORT; keepalive 1024; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    location / { proxy_pass http://be; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGX
nginx -c "$T/nginx.conf" || exit 1
printf '{"listen":{"host":"127.0.0.1","port":%s,"threads":2},"log":{"level":"warn"},"limits":{"max_connections":20000,"max_connections_per_ip":0},"models":{"bench":{"upstream":"http://127.0.0.1:%s"}}}' \
    "$GW_PORT" "$BE_PORT" >"$T/gw.json"
"$B/gateway/llama-gateway" --config "$T/gw.json" >"$T/gw.out" 2>"$T/gw.err" & PIDS+=($!)
ulimit -n 65536 2>/dev/null
sleep 0.5
field() { grep -o "\"$1\":[0-9.]*" | head -1 | cut -d: -f2; }
for name in direct:$BE_PORT nginx:$NGX_PORT gateway:$GW_PORT; do
    port=${name#*:}
    for c in 1 64; do
        out=$($LG rps --port "$port" --conns "$c" --duration-ms 1500 --model bench)
        printf '%-8s rps  conns %-4s  %8s req/s  p50 %5s us\n' "${name%%:*}" "$c" \
            "$(field rps <<<"$out")" "$(field p50_us <<<"$out")"
    done
    for s in 64 512; do
        out=$($LG sse --port "$port" --streams "$s" --events 50 --interval-ms 20 --model bench)
        printf '%-8s sse  streams %-4s  event delay p50 %5s us  p99 %6s us  errors %s\n' \
            "${name%%:*}" "$s" "$(field p50_us <<<"$out")" "$(field p99_us <<<"$out")" \
            "$(field errors <<<"$out")"
    done
done
