#!/usr/bin/env bash
# bench/run.sh - the gateway against going straight to the backend, in one run.
#
# Builds sse_backend, loadgen and llama-gateway (cmake Release into build-bench/), starts one
# sse_backend and one gateway in front of it on free 127.0.0.1 ports, and runs every phase
# against both targets back to back, alternating the order (direct, gateway, gateway, direct,
# ...) so that slow drifts of this noisy machine hit both sides alike. Verdicts use medians over
# repeats and paired differences / ratios, never a single absolute time. See bench/README.md.
#
# Usage: bench/run.sh [--no-build] [--build-dir DIR] [--repeats N] [--quick] [--direct-only]
#                     [--log-level LEVEL] [--keep] [--summarize KEPT_DIR]
# Needs: bash, cmake, a C compiler, curl, jq. Writes bench/results/latest.{json,txt}.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$ROOT/build-bench
RESULTS_DIR=$ROOT/bench/results
DO_BUILD=1
REPEATS=3
QUICK=0
DIRECT_ONLY=0
LOG_LEVEL=""
KEEP=0
SUMMARIZE_DIR=""

# Phase shapes (the issue's targets).
RPS_CONNS=(1 16 64)
RPS_MS=1500          # measured window per run
RPS_WARMUP_MS=300    # connections open and requests flow, not recorded
SSE_STREAMS=(1 64 512)
SSE_EVENTS=50
SSE_INTERVAL_MS=20
BIG_STREAMS=1000     # the zero-error concurrency phase
BIG_EVENTS=30
BIG_INTERVAL_MS=100
IDLE_S=3             # CPU sampling windows
SILENT_STREAMS=300

while [[ $# -gt 0 ]]; do
    case $1 in
    --no-build) DO_BUILD=0 ;;
    --build-dir) BUILD_DIR=$(realpath -m "$2"); shift ;;
    --repeats) REPEATS=$2; shift ;;
    --quick) QUICK=1 ;;
    --direct-only) DIRECT_ONLY=1 ;;
    --log-level) LOG_LEVEL=$2; shift ;;
    --keep) KEEP=1 ;;
    --summarize) SUMMARIZE_DIR=$(realpath "$2"); shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $QUICK == 1 ]]; then
    REPEATS=1
    RPS_MS=700
    RPS_WARMUP_MS=200
    SSE_EVENTS=25
    BIG_EVENTS=10
fi
for tool in jq curl cmake; do
    command -v $tool >/dev/null || { echo "run.sh: $tool is required" >&2; exit 2; }
done

BACKEND=$BUILD_DIR/bench/sse_backend
FLOOR=$BUILD_DIR/bench/floor_proxy
LOADGEN=$BUILD_DIR/bench/loadgen
GATEWAY=$BUILD_DIR/gateway/llama-gateway
TMP=$(mktemp -d /tmp/gwbench.XXXXXX)
RAW=$TMP/runs.jsonl
: >"$RAW"
BE_PID=""
GW_PID=""
FLOOR_PIDS=()
FLOOR_PORT=""   # floor_proxy: one-thread parse-nothing relay
HANDOFF_PORT="" # floor_proxy --handoff: the same with the architecture's two thread hand-offs
BG_PIDS=()
T_START=$(date +%s)

log() { printf '[%4ds] %s\n' $(($(date +%s) - T_START)) "$*" >&2; }

# Stops exactly the processes this script started, by PID.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do stop_pid "$p"; done
    stop_pid "$GW_PID"
    for p in "${FLOOR_PIDS[@]}"; do stop_pid "$p"; done
    stop_pid "$BE_PID"
    if [[ $KEEP == 1 ]]; then
        echo "run.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------------
# Summary: medians over repeats, paired differences, ratios, PASS/FAIL. Reads runs.jsonl,
# meta.json and idle.json in $TMP; writes latest.{json,txt} there and into bench/results/.
# ------------------------------------------------------------------------------------------
summarize() {
mkdir -p "$RESULTS_DIR"
jq -s -c --slurpfile meta "$TMP/meta.json" --slurpfile idle "$TMP/idle.json" -f /dev/stdin "$RAW" \
    >"$TMP/latest.json" <<'JQ'
def median: map(select(. != null)) | sort
    | if length == 0 then null
      elif length % 2 == 1 then .[(length - 1) / 2]
      else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def r1: if . == null then null else (. * 10 | round) / 10 end;
def r3: if . == null then null else (. * 1000 | round) / 1000 end;
. as $runs | $meta[0] as $meta | $idle[0] as $idle
| ($runs | map(.phase) | unique) as $phases
| [ $phases[] as $p
    | ($runs | map(select(.phase == $p))) as $rs
    | ($rs | map(select(.target == "direct"))) as $d
    | ($rs | map(select(.target == "gateway"))) as $g
    | ($rs | map(select(.target == "floor"))) as $f
    | ($rs | map(select(.target == "handoff"))) as $h
    | # paired differences by repeat number
      ([ $d[] as $x | $g[] | select(.rep == $x.rep) | .p50_us - $x.p50_us ] | median) as $dp50
    | {phase: $p, mode: $rs[0].mode,
       conc: ($rs[0].conns // $rs[0].streams),
       runs_direct: ($d | length), runs_gateway: ($g | length),
       direct: {rps: ($d | map(.rps) | median | r1), p50_us: ($d | map(.p50_us) | median),
                p99_us: ($d | map(.p99_us) | median), errors: ($d | map(.errors) | add)},
       gateway: {rps: ($g | map(.rps) | median | r1), p50_us: ($g | map(.p50_us) | median),
                 p99_us: ($g | map(.p99_us) | median), errors: ($g | map(.errors) | add),
                 cpu_s: ($g | map(.gw_cpu_s) | median | r3),
                 cpu_us_per_item: ($g | map(select(.gw_cpu_s != null)
                     | ((if .mode == "rps" then .count else .events end) // 0) as $n
                     | select($n > 0) | .gw_cpu_s * 1e6 / $n) | median | r1),
                 backend_new_conns: ($g | map(.backend_new_conns) | median),
                 ok: ($g | map(.ok) | add), streams: ($g | map(.streams) | add)},
       added_p50_us: $dp50,
       # the reference relays (bench/floor_proxy.c), requests/s phases only
       floor: (if ($f | length) == 0 then null else
           {rps: ($f | map(.rps) | median | r1), p50_us: ($f | map(.p50_us) | median),
            ratio: (($f | map(.rps) | median) / ($d | map(.rps) | median) | r3),
            added_p50_us: ([ $d[] as $x | $f[] | select(.rep == $x.rep) | .p50_us - $x.p50_us ] | median)} end),
       handoff: (if ($h | length) == 0 then null else
           {rps: ($h | map(.rps) | median | r1), p50_us: ($h | map(.p50_us) | median),
            ratio: (($h | map(.rps) | median) / ($d | map(.rps) | median) | r3),
            added_p50_us: ([ $d[] as $x | $h[] | select(.rep == $x.rep) | .p50_us - $x.p50_us ] | median)} end),
       # CPU% (of one CPU) used on the machine by anything but client, backend and gateway
       other_load_pct: (($d + $g) | map(select(.other_cpu_s != null and .wall_s > 0)
                              | .other_cpu_s / .wall_s * 100) | median | r1),
       client_cpu_pct: (($d + $g) | map(select(.client_cpu_s != null and .wall_s > 0)
                              | .client_cpu_s / .wall_s * 100) | median | r1),
       rps_ratio: (if $rs[0].mode == "rps" and ($d | length) > 0 and ($g | length) > 0
                   then (($g | map(.rps) | median) / ($d | map(.rps) | median)) | r3 else null end)}
  ] as $summary
| ($summary | map({key: .phase, value: .}) | from_entries) as $S
| def check(name; target; value; unit; pass):
      {name: name, target: target, value: value, unit: unit, note: null,
       result: (if $meta.gateway_ran | not then "SKIP" elif value == null then "FAIL"
                elif pass then "PASS" else "FAIL" end)};
  [ (check("added p50 latency, 1 connection (gateway - direct, paired median)"; "<= 30 us";
          $S.rps_c1.added_p50_us; "us"; $S.rps_c1.added_p50_us <= 30)
       + {note: (if $S.rps_c1.floor == null then null else
           "same run: parse-nothing relay \($S.rps_c1.floor.added_p50_us) us, the same with the architecture's two thread hand-offs \($S.rps_c1.handoff.added_p50_us // "-") us" end)}),
    (check("throughput at 64 connections (gateway / direct, medians)"; ">= 0.6x";
          $S.rps_c64.rps_ratio; "x"; $S.rps_c64.rps_ratio >= 0.6)
       + {note: (if $S.rps_c64.floor == null then null else
           "same run: parse-nothing relay \($S.rps_c64.floor.ratio)x, with the thread hand-offs \($S.rps_c64.handoff.ratio // "-")x" end)}),
    check("added per-event p50 at 64 streams (gateway - direct, paired median)"; "<= 300 us";
          $S.sse_s64.added_p50_us; "us"; $S.sse_s64.added_p50_us <= 300),
    check("1000 concurrent streams through the gateway, all events + [DONE]"; "0 errors";
          ($S.sse_s1000.gateway | "\(.ok)/\(.streams) ok, \(.errors) errors"); "";
          $S.sse_s1000.gateway.errors == 0 and $S.sse_s1000.gateway.ok == 1000),
    check("gateway peak RSS (VmHWM) during the 512-stream phase"; "< 30 MiB";
          (if $meta.gw_vmhwm_512_kb then ($meta.gw_vmhwm_512_kb / 1024 | r1) else null end); "MiB";
          $meta.gw_vmhwm_512_kb < 30 * 1024),
    check("gateway CPU while idle, no connections, \($meta.shape.idle_s) s"; "0.00 %";
          $idle.idle.cpu_pct; "%"; $idle.idle.cpu_pct == 0),
    check("gateway CPU while \($meta.shape.silent_streams) streams wait on a silent backend, \($meta.shape.idle_s) s"; "0.00 %";
          $idle.silent_after_headers.cpu_pct; "%"; $idle.silent_after_headers.cpu_pct == 0),
    check("errors in all other gateway phases"; "0";
          ([$runs[] | select(.target == "gateway" and .phase != "sse_s1000") | .errors] | add); "";
          ([$runs[] | select(.target == "gateway" and .phase != "sse_s1000") | .errors] | add) == 0
          and ([$runs[] | select(.target == "gateway")] | length) > 0)
  ] as $checks
| {meta: $meta, checks: $checks, summary: $summary, idle: $idle, runs: $runs}
JQ
if [[ ! -s $TMP/latest.json ]]; then
    echo "run.sh: summarising failed; raw runs in $TMP/runs.jsonl" >&2
    KEEP=1
    exit 1
fi

# The text report.
jq -r -f /dev/stdin "$TMP/latest.json" >"$TMP/latest.txt" <<'JQ' || { KEEP=1; exit 1; }
def pad(n): tostring | if length < n then (" " * (n - length)) + . else . end;
def lpad(n): tostring | if length < n then . + (" " * (n - length)) else . end;
def v: if . == null then "-" else . end;
def f2: (. * 100 | round) as $x | "\($x / 100 | floor).\($x % 100 | if . < 10 then "0\(.)" else "\(.)" end)";
.meta as $m
| "llama-gateway bench  \($m.date)  rev \($m.git_rev)\(if $m.gateway_files_modified > 0 then " (+\($m.gateway_files_modified) uncommitted gateway files)" else "" end)",
  "machine: \($m.cpus) CPUs (\($m.cpu)), kernel \($m.kernel); client, backend and gateway share them",
  "method: same run, same backend and client; ABBA-interleaved, medians of \($m.repeats) repeats; added = median of paired (gateway - direct)",
  ([.summary[] | select(.phase | test("^(rps|sse)_")) | .other_load_pct | select(. != null)] | sort
   | if length > 0 then .[(length - 1) / 2 | floor] else 0 end) as $other
  | (if $other > 25 then "WARNING: other work on this machine used a median \($other)% of one CPU during the phases (see \"other load %\"); absolute numbers and ratios are distorted, rerun when the machine is quieter" else empty end),
  (if $m.gateway_ran then "gateway: ran (log level \($m.gateway_log_level), \($m.gw_threads // "?") threads at the end)\(if $m.gateway_skip_reason != "" then "; PROBLEM: " + $m.gateway_skip_reason else "" end)"
   else "gateway: NOT RUN - \($m.gateway_skip_reason)" end),
  "",
  "requests/s, closed loop, keep-alive (POST /v1/chat/completions, ~220 B body, ~660 B reply)",
  "  conns | direct rps   p50us  p99us | gateway rps   p50us  p99us | ratio | added p50us | gw CPU us/req | errors d/g | other load %",
  (.summary | map(select(.mode == "rps")) | sort_by(.conc)[] |
   "  \(.conc | pad(5)) | \(.direct.rps | v | pad(10)) \(.direct.p50_us | v | pad(7)) \(.direct.p99_us | v | pad(6)) | \(.gateway.rps | v | pad(11)) \(.gateway.p50_us | v | pad(7)) \(.gateway.p99_us | v | pad(6)) | \(.rps_ratio | v | pad(5)) | \(.added_p50_us | v | pad(11)) | \(.gateway.cpu_us_per_item | v | pad(13)) | \("\(.direct.errors | v)/\(.gateway.errors | v)" | pad(10)) | \(.other_load_pct | v | pad(12))"),
  "",
  "reference relays, same phases (bench/floor_proxy.c: TCP relays that parse nothing, the floor for any proxy here)",
  "  conns | floor rps   p50us | ratio | added p50us | handoff rps   p50us | ratio | added p50us",
  (.summary | map(select(.mode == "rps" and .floor != null)) | sort_by(.conc)[] |
   "  \(.conc | pad(5)) | \(.floor.rps | v | pad(9)) \(.floor.p50_us | v | pad(7)) | \(.floor.ratio | v | pad(5)) | \(.floor.added_p50_us | v | pad(11)) | \(.handoff.rps // null | v | pad(11)) \(.handoff.p50_us // null | v | pad(7)) | \(.handoff.ratio // null | v | pad(5)) | \(.handoff.added_p50_us // null | v | pad(11))"),
  "  floor: one thread, one read() and one write() per readiness, one backend connection per client connection",
  "  handoff: the same bytes cross two threads each way (client side -> backend side -> client side), as in the gateway",
  "",
  "SSE per-event delay (backend write -> client read), \($m.shape.sse_events) events \($m.shape.sse_interval_ms) ms apart per stream",
  "  streams | direct p50us  p99us | gateway p50us  p99us | added p50us | gw CPU us/event | gw CPU s | errors d/g | other load %",
  (.summary | map(select(.mode == "sse" and (.phase | test("^sse_s[0-9]+$")))) | sort_by(.conc)[] |
   "  \(.conc | pad(7)) | \(.direct.p50_us | v | pad(12)) \(.direct.p99_us | v | pad(6)) | \(.gateway.p50_us | v | pad(13)) \(.gateway.p99_us | v | pad(6)) | \(.added_p50_us | v | pad(11)) | \(.gateway.cpu_us_per_item | v | pad(15)) | \(.gateway.cpu_s | v | pad(8)) | \("\(.direct.errors | v)/\(.gateway.errors | v)" | pad(10)) | \(.other_load_pct | v | pad(12))"),
  "  (the \($m.shape.big_streams)-stream row uses \($m.shape.big_events) events \($m.shape.big_interval_ms) ms apart)",
  "",
  "gateway memory: VmRSS at start \(if $m.gw_rss_start_kb then "\($m.gw_rss_start_kb / 1024 * 10 | round / 10) MiB" else "-" end), VmHWM before the 512-stream phase \(if $m.gw_vmhwm_before_512_kb then "\($m.gw_vmhwm_before_512_kb / 1024 * 10 | round / 10) MiB" else "-" end),",
  "                VmHWM during 512 streams \(if $m.gw_vmhwm_512_kb then "\($m.gw_vmhwm_512_kb / 1024 * 10 | round / 10) MiB" else "-" end), after 1000 streams \(if $m.gw_vmhwm_after_1000_kb then "\($m.gw_vmhwm_after_1000_kb / 1024 * 10 | round / 10) MiB" else "-" end), at the end \(if $m.gw_vmhwm_final_kb then "\($m.gw_vmhwm_final_kb / 1024 * 10 | round / 10) MiB" else "-" end)",
  (.idle | to_entries[] | "gateway CPU \(.key): \(.value.cpu_pct | f2) % over \(.value.window_s * 100 | round / 100) s, \(.value.wakeups_per_s) context switches/s, \(.value.threads) threads"),
  ([.runs[] | select(.phase | startswith("silent"))] | map("  \(.phase): \(.ok // 0)/\(.streams // "?") streams ok, ttfb p50 \(.ttfb_p50_us // "-") us")[]),
  "",
  "verdicts",
  (.checks[] | "  \(.result | lpad(4))  \(.name): \(if .unit == "%" and .value != null then (.value | f2) else .value | v end)\(if .unit == "" or .unit == "x" then .unit else " " + .unit end) (target \(.target))\(if .note then "\n        \(.note)" else "" end)")
JQ
# Diagnostics: what the client saw first in every run with errors, and what the gateway logged
# other than its 200 access lines.
if jq -e '[.runs[] | select((.errors // 0) > 0)] | length > 0' "$TMP/latest.json" >/dev/null; then
    KEEP=1
    {
        echo
        echo "diagnostics (scratch directory kept: $TMP)"
        jq -r '.runs[] | select((.errors // 0) > 0)
               | "  \(.phase)/\(.target)#\(.rep): \(.errors) errors, first: \(.first_error // .failed // "?")"' \
            "$TMP/latest.json"
        if [[ -f $TMP/gateway.log ]]; then
            echo "  gateway log, status counts: $(grep -o 'status=[0-9]*' "$TMP/gateway.log" | sort | uniq -c | tr -s ' \n' ' ')"
            grep -v 'status=200 ' "$TMP/gateway.log" | grep -v 'listening on\| -> http' | head -15 | sed 's/^/  | /'
        fi
    } >>"$TMP/latest.txt"
fi
cp "$TMP/latest.json" "$RESULTS_DIR/latest.json"
cp "$TMP/latest.txt" "$RESULTS_DIR/latest.txt"
echo
cat "$TMP/latest.txt"
log "done in $(($(date +%s) - T_START)) s; saved $RESULTS_DIR/latest.{json,txt}"
}

if [[ -n $SUMMARIZE_DIR ]]; then
    rm -rf "$TMP"
    TMP=$SUMMARIZE_DIR
    RAW=$TMP/runs.jsonl
    KEEP=1
    summarize
    exit
fi

# 1,000+ streams need about 2 descriptors each in every process on the path.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

# ------------------------------------------------------------------------------------------
# Build
# ------------------------------------------------------------------------------------------
GW_REASON=""
if [[ $DO_BUILD == 1 ]]; then
    log "building into $BUILD_DIR (Release)"
    # GW_WERROR=OFF: a warning elsewhere in the tree must not stop a benchmark build.
    if ! cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGW_WERROR=OFF \
        -DGW_SANITIZE=OFF -DGW_TESTS=ON >"$TMP/cmake.log" 2>&1; then
        tail -20 "$TMP/cmake.log" >&2
        echo "run.sh: cmake configure failed" >&2
        exit 1
    fi
    if ! cmake --build "$BUILD_DIR" --target sse_backend loadgen floor_proxy -j2 >"$TMP/build.log" 2>&1; then
        tail -30 "$TMP/build.log" >&2
        echo "run.sh: building the bench tools failed" >&2
        exit 1
    fi
    if [[ $DIRECT_ONLY == 0 ]] &&
        ! cmake --build "$BUILD_DIR" --target llama-gateway -j2 >"$TMP/build-gw.log" 2>&1; then
        tail -15 "$TMP/build-gw.log" >&2
        GW_REASON="llama-gateway does not build"
    fi
fi
[[ -x $BACKEND && -x $LOADGEN ]] || { echo "run.sh: bench tools missing in $BUILD_DIR" >&2; exit 1; }
if [[ $DIRECT_ONLY == 1 ]]; then
    GW_REASON="--direct-only"
elif [[ -z $GW_REASON && ! -x $GATEWAY ]]; then
    GW_REASON="no gateway binary at $GATEWAY"
fi

# ------------------------------------------------------------------------------------------
# Start the backend and the gateway
# ------------------------------------------------------------------------------------------
wait_health() { # port seconds
    local i
    for i in $(seq 1 $(($2 * 20))); do
        curl -sf -m 1 "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

"$BACKEND" --port 0 >"$TMP/backend.out" 2>"$TMP/backend.err" &
BE_PID=$!
for i in $(seq 1 100); do
    grep -q '^listening on' "$TMP/backend.out" 2>/dev/null && break
    sleep 0.05
done
BE_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/backend.out")
[[ -n $BE_PORT ]] && wait_health "$BE_PORT" 5 || { echo "run.sh: sse_backend did not start" >&2; cat "$TMP/backend.err" >&2; exit 1; }
log "sse_backend pid $BE_PID on 127.0.0.1:$BE_PORT"

# The reference relays for the requests/s phases (bench/floor_proxy.c): what any proxy can
# reach on this machine in front of this backend, measured in the same run.
if [[ -x $FLOOR ]]; then
    for kind in floor handoff; do
        port=$("$LOADGEN" port)
        if [[ $kind == floor ]]; then
            "$FLOOR" --port "$port" --upstream-port "$BE_PORT" >/dev/null 2>&1 &
        else
            "$FLOOR" --port "$port" --upstream-port "$BE_PORT" --handoff >/dev/null 2>&1 &
        fi
        FLOOR_PIDS+=($!)
        if wait_health "$port" 5; then
            [[ $kind == floor ]] && FLOOR_PORT=$port || HANDOFF_PORT=$port
        else
            log "floor_proxy ($kind) did not start: its rows stay empty"
        fi
    done
    log "reference relays: floor on ${FLOOR_PORT:--}, handoff on ${HANDOFF_PORT:--}"
fi

HAVE_GW=0    # the gateway is up: run its phases
GW_STARTED=0 # it came up at all (a crash later makes the verdicts FAIL, not SKIP)
GW_PORT=""
GW_RSS_START_KB=""
HWM_BEFORE_512_KB=""
if [[ -z $GW_REASON ]]; then
    for attempt in 1 2 3; do
        GW_PORT=$("$LOADGEN" port)
        {
            printf '{"listen": {"host": "127.0.0.1", "port": %s, "threads": 2},\n' "$GW_PORT"
            # all load comes from one address: lift the per-address cap (default 256)
            printf ' "limits": {"max_connections": 20000, "max_connections_per_ip": 0},\n'
            [[ -n $LOG_LEVEL ]] && printf ' "log": {"level": "%s"},\n' "$LOG_LEVEL"
            printf ' "models": {"bench": {"upstream": "http://127.0.0.1:%s"}}}\n' "$BE_PORT"
        } >"$TMP/gateway.json"
        "$GATEWAY" --config "$TMP/gateway.json" >"$TMP/gateway.log" 2>&1 &
        GW_PID=$!
        if wait_health "$GW_PORT" 10; then
            HAVE_GW=1
            GW_STARTED=1
            break
        fi
        stop_pid "$GW_PID"
        GW_PID=""
    done
    if [[ $HAVE_GW == 1 ]]; then
        sleep 0.2
        GW_RSS_START_KB=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$GW_PID/status")
        log "llama-gateway pid $GW_PID on 127.0.0.1:$GW_PORT, VmRSS ${GW_RSS_START_KB} kB"
    else
        GW_REASON="llama-gateway did not answer /health (log: $(tail -3 "$TMP/gateway.log" | tr '\n' ' '))"
    fi
fi
[[ $HAVE_GW == 0 ]] && log "gateway phases skipped: $GW_REASON"

# ------------------------------------------------------------------------------------------
# /proc sampling of the gateway
# ------------------------------------------------------------------------------------------
# CPU time in ns summed over the gateway's threads (schedstat: ns resolution, unlike the 10 ms
# ticks of /proc/PID/stat, which we record too as utime+stime).
gw_cpu_ns() {
    local f v s=0
    for f in /proc/$GW_PID/task/*/schedstat; do
        read -r v _ <"$f" 2>/dev/null && s=$((s + v))
    done
    echo $s
}
gw_ticks() { awk '{print $14 + $15}' "/proc/$GW_PID/stat" 2>/dev/null || echo 0; }
gw_ctxsw() {
    cat /proc/$GW_PID/task/*/status 2>/dev/null |
        awk '/ctxt_switches/ {s += $2} END {print s + 0}'
}
gw_status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0; }
gw_threads() { ls /proc/$GW_PID/task 2>/dev/null | wc -l; }
gw_alive() { [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; }
be_cpu_ns() { read -r v _ <"/proc/$BE_PID/schedstat" 2>/dev/null && echo "$v" || echo 0; }
# Idle + iowait time of the whole machine (all CPUs) in ns, from /proc/stat. With NO_HZ the
# kernel derives idle from exact idle-entry/exit times (busy ticks are only sampled), so busy
# time is computed as CPUs x wall - idle.
host_idle_ns() {
    awk -v hz="$CLK_TCK" '$1 == "cpu" {printf "%.0f\n", ($5 + $6) * 1e9 / hz; exit}' /proc/stat
}
NCPU=$(nproc)
be_accepted() { curl -sf -m 2 "http://127.0.0.1:$BE_PORT/bench/stats" | jq -r .accepted 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK)
NOW_NS() { date +%s%N; }

# ------------------------------------------------------------------------------------------
# One loadgen run: appends one JSON line (loadgen's output + phase, target, rep, gateway CPU)
# ------------------------------------------------------------------------------------------
run_lg() { # phase target rep loadgen-args...
    local phase=$1 target=$2 rep=$3 port out rc=0 c0=0 c1=0 k0=0 k1=0 a0=0 a1=0 t0 t1 limit
    local b0 b1 h0 h1
    shift 3
    port=$BE_PORT
    [[ $target == gateway ]] && port=$GW_PORT
    [[ $target == floor ]] && port=$FLOOR_PORT
    [[ $target == handoff ]] && port=$HANDOFF_PORT
    limit=120
    if [[ $target == gateway ]]; then
        c0=$(gw_cpu_ns); k0=$(gw_ticks); a0=$(be_accepted)
    fi
    b0=$(be_cpu_ns); h0=$(host_idle_ns)
    t0=$(NOW_NS)
    out=$(timeout -k 2 $limit "$LOADGEN" "$@" --port "$port" --label "$phase/$target" \
        2>>"$TMP/loadgen.err") || rc=$?
    t1=$(NOW_NS)
    b1=$(be_cpu_ns); h1=$(host_idle_ns)
    if [[ $target == gateway ]]; then
        c1=$(gw_cpu_ns); k1=$(gw_ticks); a1=$(be_accepted)
    fi
    if ! jq -e . >/dev/null 2>&1 <<<"$out"; then
        out="{\"mode\":\"$1\",\"errors\":1,\"failed\":\"loadgen exit $rc, no result\"}"
    fi
    jq -c --arg phase "$phase" --arg target "$target" --argjson rep "$rep" \
        --argjson cpu_ns $((c1 - c0)) --argjson ticks $((k1 - k0)) \
        --argjson wall_ns $((t1 - t0)) --argjson be_conns $((a1 - a0)) --argjson rc "$rc" \
        --argjson alive "$(gw_alive && echo true || echo false)" --argjson tck "$CLK_TCK" \
        --argjson be_ns $((b1 - b0)) --argjson host_ns $((NCPU * (t1 - t0) - (h1 - h0))) \
        '. + {phase: $phase, target: $target, rep: $rep, loadgen_rc: $rc, wall_s: ($wall_ns / 1e9),
              backend_cpu_s: ($be_ns / 1e9), host_busy_cpu_s: ($host_ns / 1e9),
              # what neither the client, the backend nor the gateway used: other load on the box
              other_cpu_s: ((($host_ns - $be_ns - $cpu_ns) / 1e9 - (.client_cpu_s // 0))
                            * 1000 | round / 1000)}
           + (if $target == "gateway" then {gw_cpu_s: ($cpu_ns / 1e9), gw_cpu_stat_s: ($ticks / $tck),
                 gw_alive: $alive, backend_new_conns: $be_conns} else {} end)' \
        <<<"$out" >>"$RAW"
    tail -1 "$RAW" | jq -r '"    \(.phase)/\(.target)#\(.rep): " +
        (if .mode == "rps" then "\(.rps) req/s p50 \(.p50_us)us p99 \(.p99_us)us errors \(.errors)"
         else "p50 \(.p50_us)us p99 \(.p99_us)us ok \(.ok)/\(.streams) errors \(.errors)" end)' >&2
    if [[ $target == gateway ]] && ! gw_alive; then
        log "THE GATEWAY DIED during $phase (see gateway log below)"
        tail -20 "$TMP/gateway.log" >&2
        HAVE_GW=0
        GW_REASON="gateway died during $phase"
    fi
}

# Runs one phase shape against both targets, $REPEATS times, in ABBA order. With
# WITH_FLOORS=1 the reference relays run too: direct gateway floor handoff, then reversed.
both() { # phase loadgen-args...
    local phase=$1 r t targets=(direct)
    shift
    [[ $HAVE_GW == 1 ]] && targets+=(gateway)
    if [[ ${WITH_FLOORS:-0} == 1 ]]; then
        [[ -n $FLOOR_PORT ]] && targets+=(floor)
        [[ -n $HANDOFF_PORT ]] && targets+=(handoff)
    fi
    for r in $(seq 1 "$REPEATS"); do
        if ((r % 2 == 1)); then
            for t in "${targets[@]}"; do run_lg "$phase" "$t" "$r" "$@"; done
        else
            for ((t = ${#targets[@]} - 1; t >= 0; t--)); do
                run_lg "$phase" "${targets[t]}" "$r" "$@"
            done
        fi
    done
}

# ------------------------------------------------------------------------------------------
# Phases
# ------------------------------------------------------------------------------------------
log "phase 1: small non-streaming requests, ${RPS_MS} ms x $REPEATS per target"
for c in "${RPS_CONNS[@]}"; do
    WITH_FLOORS=1 both "rps_c$c" rps --conns "$c" --duration-ms "$RPS_MS" --warmup-ms "$RPS_WARMUP_MS"
done
for p in "${FLOOR_PIDS[@]}"; do stop_pid "$p"; done # not needed past phase 1
FLOOR_PIDS=()

log "phase 2: per-event relay delay, $SSE_EVENTS events ${SSE_INTERVAL_MS} ms apart"
HWM_512_KB=""
for s in "${SSE_STREAMS[@]}"; do
    if [[ $s == 512 && $HAVE_GW == 1 ]]; then
        # Peak RSS of this phase only: writing 5 to clear_refs resets VmHWM to the current RSS.
        HWM_BEFORE_512_KB=$(gw_status_kb VmHWM)
        echo 5 >"/proc/$GW_PID/clear_refs" 2>/dev/null || log "could not reset VmHWM"
    fi
    both "sse_s$s" sse --streams "$s" --events "$SSE_EVENTS" --interval-ms "$SSE_INTERVAL_MS"
    if [[ $s == 512 && $HAVE_GW == 1 ]]; then
        HWM_512_KB=$(gw_status_kb VmHWM)
    fi
done

log "phase 3: $BIG_STREAMS concurrent streams, $BIG_EVENTS events ${BIG_INTERVAL_MS} ms apart"
run_lg "sse_s$BIG_STREAMS" direct 1 sse --streams "$BIG_STREAMS" --events "$BIG_EVENTS" \
    --interval-ms "$BIG_INTERVAL_MS"
if [[ $HAVE_GW == 1 ]]; then
    run_lg "sse_s$BIG_STREAMS" gateway 1 sse --streams "$BIG_STREAMS" --events "$BIG_EVENTS" \
        --interval-ms "$BIG_INTERVAL_MS"
    HWM_1000_KB=$(gw_status_kb VmHWM)
fi

# CPU% over a window, with ns resolution; also wake-ups (context switches) per second.
IDLE_JSON='{}'
measure_idle() { # name
    local c0 c1 w0 w1 t0 t1
    c0=$(gw_cpu_ns); w0=$(gw_ctxsw); t0=$(NOW_NS)
    sleep "$IDLE_S"
    c1=$(gw_cpu_ns); w1=$(gw_ctxsw); t1=$(NOW_NS)
    IDLE_JSON=$(jq -c --arg n "$1" --argjson c $((c1 - c0)) --argjson w $((w1 - w0)) \
        --argjson t $((t1 - t0)) --argjson thr "$(gw_threads)" --argjson rss "$(gw_status_kb VmRSS)" \
        '. + {($n): {cpu_pct: (($c / $t) * 10000 | round / 100), cpu_ns: $c,
                     wakeups_per_s: (($w / ($t / 1e9)) * 10 | round / 10), window_s: ($t / 1e9),
                     threads: $thr, rss_kb: $rss}}' <<<"$IDLE_JSON")
    log "  $1: $(jq -c ".$1" <<<"$IDLE_JSON")"
}
silent_streams() { # name loadgen-extra-args...
    local name=$1 pid out silent_ms
    shift
    silent_ms=$((IDLE_S * 1000 + 3000))
    "$LOADGEN" sse --port "$GW_PORT" --streams "$SILENT_STREAMS" --events 1 --interval-ms 1 \
        --silent-ms "$silent_ms" --spread-ms 300 --label "$name/gateway" "$@" \
        >"$TMP/$name.json" 2>>"$TMP/loadgen.err" &
    pid=$!
    BG_PIDS+=("$pid")
    sleep 1.5 # all streams connected and waiting (spread 300 ms)
    measure_idle "$name"
    wait "$pid"
    out=$(cat "$TMP/$name.json")
    jq -e . >/dev/null 2>&1 <<<"$out" || out="{\"mode\":\"sse\",\"errors\":1,\"failed\":\"no result\"}"
    jq -c --arg phase "$name" '. + {phase: $phase, target: "gateway", rep: 1}' <<<"$out" >>"$RAW"
}
if [[ $HAVE_GW == 1 ]]; then
    log "phase 4: gateway CPU while idle and while $SILENT_STREAMS streams wait on a silent backend"
    sleep 1
    measure_idle idle
    silent_streams silent_after_headers
    # The same silence, but llama-server-style prompt processing before the response head.
    silent_streams silent_before_headers --hold-headers
fi
GW_FINAL_HWM_KB=""
GW_THREADS=""
if [[ $HAVE_GW == 1 ]] && gw_alive; then
    GW_FINAL_HWM_KB=$(gw_status_kb VmHWM)
    GW_THREADS=$(gw_threads)
fi

# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------
jq -n -c --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --arg rev "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --arg dirty "$(git -C "$ROOT" status --porcelain -- gateway 2>/dev/null | wc -l)" \
    --arg kernel "$(uname -r)" --argjson ncpu "$(nproc)" --argjson repeats "$REPEATS" \
    --arg cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    --arg gw_reason "$GW_REASON" --argjson have_gw "$GW_STARTED" --arg log_level "${LOG_LEVEL:-default}" \
    --arg hwm512 "${HWM_512_KB:-}" --arg hwm1000 "${HWM_1000_KB:-}" --arg hwmfinal "$GW_FINAL_HWM_KB" \
    --arg threads "$GW_THREADS" --argjson quick "$QUICK" \
    --arg rss0 "$GW_RSS_START_KB" --arg hwm_pre512 "$HWM_BEFORE_512_KB" \
    --argjson shape "{\"rps_ms\":$RPS_MS,\"rps_warmup_ms\":$RPS_WARMUP_MS,\"sse_events\":$SSE_EVENTS,\"sse_interval_ms\":$SSE_INTERVAL_MS,\"big_streams\":$BIG_STREAMS,\"big_events\":$BIG_EVENTS,\"big_interval_ms\":$BIG_INTERVAL_MS,\"idle_s\":$IDLE_S,\"silent_streams\":$SILENT_STREAMS}" \
    '{date: $date, git_rev: $rev, gateway_files_modified: ($dirty | tonumber), kernel: $kernel,
      cpus: $ncpu, cpu: $cpu, repeats: $repeats, quick: ($quick == 1), shape: $shape,
      gateway_ran: ($have_gw == 1), gateway_skip_reason: $gw_reason, gateway_log_level: $log_level,
      gw_rss_start_kb: ($rss0 | tonumber? // null), gw_vmhwm_before_512_kb: ($hwm_pre512 | tonumber? // null),
      gw_vmhwm_512_kb: ($hwm512 | tonumber? // null), gw_vmhwm_after_1000_kb: ($hwm1000 | tonumber? // null),
      gw_vmhwm_final_kb: ($hwmfinal | tonumber? // null), gw_threads: ($threads | tonumber? // null)}' \
    >"$TMP/meta.json"
echo "$IDLE_JSON" >"$TMP/idle.json"
summarize
