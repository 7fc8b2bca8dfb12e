#!/bin/sh
# fuzz.sh BUILD_DIR SECONDS [RESULTS_DIR]: run every libFuzzer target in a
# fuzz build (meson setup -Dfuzz=true with CC=clang-14) for SECONDS each,
# starting from the seeds in tests/fuzz/corpus/NAME and
# tests/providers/fuzz/corpus/NAME when they exist. A target that finds a
# crash fails; its reproducer is left in BUILD_DIR/fuzz-artifacts/.
set -u
build=$1 secs=${2:-10} results=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0
mkdir -p "$build/fuzz-artifacts"
for exe in $(find "$build/tests" -maxdepth 3 -type f -name 'fuzz_*' -perm -u+x | sort); do
    name=$(basename "$exe" | sed 's/^fuzz_//')
    corpus=$(mktemp -d)
    for seeds in "$root/tests/fuzz/corpus/$name" "$root/tests/providers/fuzz/corpus/$name"; do
        [ -d "$seeds" ] && cp -r "$seeds/." "$corpus/"
    done
    if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
       "$exe" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$build/fuzz-artifacts/$name-" "$corpus" >"$build/fuzz-$name.log" 2>&1; then
        echo "ok fuzz_$name ($(grep -o 'Done [0-9]* runs' "$build/fuzz-$name.log" | awk '{print $2}') runs)"
        passed=$((passed + 1))
    else
        echo "FAIL fuzz_$name"; tail -n 30 "$build/fuzz-$name.log" | sed 's/^/  /'
        failed=$((failed + 1))
    fi
    rm -rf "$corpus"
done
echo "$passed passed, $failed failed" | tee ${results:+"$results/fuzz.counts"}
[ "$failed" -eq 0 ]
