#!/bin/sh
# run.sh FUZZER SEED_DIR - one bounded libFuzzer run of FUZZER from the seeds in SEED_DIR.
#
#   FUZZ_SECONDS   run time (default FUZZ_DEFAULT_SECONDS from CMake, else 20)
#   FUZZ_CORPUS    directory that keeps the grown corpus (default: a temporary one; the
#                  committed seeds are never written to)
#   FUZZ_ARTIFACTS where crashing inputs go (default ./artifacts)
#
# Exit status 0 when the run ends by time with no finding. The last lines printed are
# libFuzzer's final statistics (executions, rate, coverage) for the record.
set -u
bin=$1
seeds=$2
secs=${FUZZ_SECONDS:-${FUZZ_DEFAULT_SECONDS:-20}}
name=$(basename "$bin")
artifacts=${FUZZ_ARTIFACTS:-$PWD/artifacts}
mkdir -p "$artifacts"
tmp=$(mktemp -d -t gw-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
corpus=${FUZZ_CORPUS:-$tmp/corpus}
mkdir -p "$corpus"

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
    "$corpus" "$seeds" >"$tmp/log" 2>&1
rc=$?
# a summary: seeds read, final stats, and any finding
grep -E '^INFO: (seed corpus|  [0-9]+ files found)|^#[0-9]+[[:space:]]+(INITED|DONE)|^Done |^stat::|ERROR|SUMMARY|Test unit written|deadly signal|timeout' "$tmp/log" | tail -n 30
if [ "$rc" -ne 0 ]; then
    echo "$name: FAILED (exit $rc); last 60 lines of the log:"
    tail -n 60 "$tmp/log"
    exit 1
fi
echo "$name: OK ($secs s)"
