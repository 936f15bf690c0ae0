#!/usr/bin/env bash
# Builds the fuzz targets in Fuzz/ with libFuzzer and AddressSanitizer, and runs each on its
# committed seed corpus plus whatever it discovers, for a given time.
#
#   scripts/fuzz.sh                  every target, 60 s each
#   scripts/fuzz.sh 600              every target, 10 minutes each
#   scripts/fuzz.sh 30 FuzzPrompt    one target
#
# New inputs that reach new code go to Fuzz/.work/<target>/ (not committed); a crash writes
# Fuzz/.work/crash-<target>-* and the script exits non-zero: add that input to
# Fuzz/Corpus/<target>/ and a regression test, then fix the reader.
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"

seconds="${1:-60}"
shift || true
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(FuzzSafeTensors FuzzTokenizerFile FuzzRunConfig FuzzTrainerState FuzzPrompt FuzzHTTP)

swift build -c release --scratch-path .build-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address 2>&1 | grep -v "prohibited flag" | tail -3
bin="$(swift build -c release --scratch-path .build-fuzz --show-bin-path)"

# The kernel table choice and OpenBLAS's own threads are not what is being fuzzed.
export OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}"
mkdir -p .work
status=0
for target in "${targets[@]}"; do
    mkdir -p ".work/$target"
    echo "== $target: ${seconds}s on Corpus/$target ($(ls "Corpus/$target" | wc -l) seeds)"
    if ! "$bin/$target" ".work/$target" "Corpus/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix=".work/crash-$target-" -print_final_stats=1 2> ".work/$target.log"; then
        tail -40 ".work/$target.log"
        status=1
    fi
    grep -E "^stat::(number_of_executed_units|new_units_added)" ".work/$target.log" | tr '\n' ' '
    echo
done
exit "$status"
