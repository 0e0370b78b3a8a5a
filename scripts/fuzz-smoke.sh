#!/usr/bin/env bash
# fuzz-smoke.sh - build the libFuzzer targets (fuzz/) with clang in build-fuzz/ and run
# each one for a bounded time from its committed seed corpus.
#
#   scripts/fuzz-smoke.sh                   every target, FUZZ_SECONDS (default 20) each
#   FUZZ_SECONDS=600 scripts/fuzz-smoke.sh  a longer run
#   scripts/fuzz-smoke.sh sse conf          only these targets
#
# A crash, leak, sanitizer report or hang (10 s per input) fails the run; the input is
# kept in build-fuzz/fuzz/artifacts/. scripts/test.sh runs the same ctest (label fuzz)
# in its "fuzz" configuration. Needs clang and libclang-rt-14-dev
# (scripts/install-deps.sh --test).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
dir=${FUZZ_BUILD_DIR:-build-fuzz}
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}

if ! command -v clang >/dev/null 2>&1; then
    bash scripts/install-deps.sh --test
fi
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_FUZZ=ON \
    >/dev/null
cmake --build "$dir" -j"${JOBS:-$(nproc)}" >/dev/null
filter=()
if [ "$#" -gt 0 ]; then
    filter=(-R "^fuzz_($(IFS='|'; echo "$*"))\$")
fi
cd "$dir"
ctest -L fuzz --output-on-failure -V "${filter[@]}" | grep -E '^[0-9]+: (#[0-9]+[[:space:]]+(INITED|DONE)|Done |stat::|fuzz_[a-z]+: )|tests passed|tests failed|Test +#'
exit "${PIPESTATUS[0]}"
