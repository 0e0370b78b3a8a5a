#!/usr/bin/env bash
# test.sh - install what is missing (with the test tools), then build and test twice:
#
#   build/       RelWithDebInfo                      ctest: unit, integration, e2e
#   build-asan/  Debug + ASan/UBSan (GW_SANITIZE=ON) ctest again, leaks are failures
#   build-fuzz/  clang + libFuzzer (GW_FUZZ=ON)      ctest -L fuzz: each target ~20 s
#
# Every failure (configure, build or test) makes the exit status non-zero. The last line
# is "N passed, N failed" summed over both ctest runs (a failed configure or build counts
# as one failed test, since its tests could not run).
#
# Environment: JOBS (build parallelism, default nproc), CTEST_JOBS (default 1),
# GW_TEST_ONLY=normal|asan|fuzz to run one of the configurations; FUZZ_SECONDS (default 20)
# per fuzz target.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

jobs=${JOBS:-$(nproc)}
ctest_jobs=${CTEST_JOBS:-1}
only=${GW_TEST_ONLY:-}
logdir=$(mktemp -d -t gw-test.XXXXXX)
trap 'rm -rf "$logdir"' EXIT

if ! bash scripts/install-deps.sh --test; then
    echo "test.sh: installing dependencies failed"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
skipped=0
summary=()
t_start=$SECONDS

# run_config NAME DIR ENV-ASSIGNMENTS -- CMAKE-ARGS...
run_config() {
    local name=$1 dir=$2 t0=$SECONDS log="$logdir/$1.ctest.log" rc line
    shift 2
    local envs=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
        envs+=("$1")
        shift
    done
    shift

    echo "==== [$name] configure ($dir: $*)"
    if ! cmake -S . -B "$dir" "$@" >"$logdir/$name.configure.log" 2>&1; then
        cat "$logdir/$name.configure.log"
        echo "==== [$name] configure FAILED"
        failed=$((failed + 1))
        summary+=("$name: configure failed")
        return
    fi
    echo "==== [$name] build (-j$jobs)"
    if ! cmake --build "$dir" -j"$jobs" >"$logdir/$name.build.log" 2>&1; then
        grep -E -B2 -A8 'error|Error' "$logdir/$name.build.log" | head -150
        echo "==== [$name] build FAILED (full log above is cut to 150 lines)"
        failed=$((failed + 1))
        summary+=("$name: build failed")
        return
    fi
    echo "==== [$name] ctest (built in $((SECONDS - t0)) s)"
    (cd "$dir" && env "${envs[@]}" ctest --output-on-failure --no-tests=error \
        -j"$ctest_jobs") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}

    local total=0 nfail=0 nskip=0
    line=$(grep -E '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    fi
    # ctest lists skipped tests under "The following tests did not run:"
    nskip=$(sed -n '/The following tests did not run:/,/^$/p' "$log" | grep -c '(Skipped)' || true)
    local npass=$((total - nfail - nskip)) note=""
    if [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ]; then
        nfail=1 # ctest failed without a count (no tests found, crash, bad arguments)
        note=" (ctest exit status $rc)"
    fi
    passed=$((passed + npass))
    failed=$((failed + nfail))
    skipped=$((skipped + nskip))
    summary+=("$name: $npass passed, $nfail failed, $nskip skipped of $total$note ($((SECONDS - t0)) s)")
}

if [ -z "$only" ] || [ "$only" = normal ]; then
    run_config normal build -- -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_SANITIZE=OFF -DGW_TESTS=ON
fi
if [ -z "$only" ] || [ "$only" = asan ]; then
    run_config asan build-asan \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        -- -DCMAKE_BUILD_TYPE=Debug -DGW_SANITIZE=ON -DGW_TESTS=ON
fi

# ---- fuzz smoke (issue 5; scripts/fuzz-smoke.sh runs the same alone): the libFuzzer
# targets in fuzz/, built with clang in build-fuzz/, each run FUZZ_SECONDS (default 20) s
# from its seed corpus. GW_TEST_ONLY=fuzz runs only this.
if [ -z "$only" ] || [ "$only" = fuzz ]; then
    run_config fuzz build-fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}" -- \
        -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGW_FUZZ=ON
fi

echo "==== summary ($((SECONDS - t_start)) s)"
for s in "${summary[@]}"; do
    echo "  $s"
done
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
