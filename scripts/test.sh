#!/bin/sh
# The test command: installs what is missing, builds the normal and the
# sanitizer (ASan+UBSan) builds, runs every suite, and prints one last line
# "N passed, N failed" summing them all. Exits non-zero if anything failed.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sh scripts/deps.sh || exit 1
results="$root/build-results"
rm -rf "$results"; mkdir -p "$results"
status=0

echo "== build (normal)"
sh scripts/build.sh build || status=1
echo "== build (asan+ubsan)"
sh scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false || status=1

run_meson() {
    name=$1 dir=$2
    echo "== meson test ($name)"
    meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 >"$results/$name.log" 2>&1
    rc=$?
    tail -n 25 "$results/$name.log"
    cp "$dir/meson-logs/testlog.json" "$results/$name.testlog.json" 2>/dev/null
    [ $rc -eq 0 ] || status=1
}
[ -f build/build.ninja ] && run_meson c build
[ -f build-asan/build.ninja ] && run_meson c-asan build-asan

echo "== fuzz (libFuzzer, clang-14, ${AC_FUZZ_SECONDS:-10} s per target)"
if CC=clang-14 CXX=clang++-14 sh scripts/build.sh build-fuzz -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false; then
    sh scripts/fuzz.sh build-fuzz "${AC_FUZZ_SECONDS:-10}" "$results" || status=1
else
    echo "0 passed, 1 failed" >"$results/fuzz-build.counts"; status=1
fi

echo "== go test (fake upstream)"
(cd tests/fakes/upstream && go test -json ./... >"$results/go-fake.json" 2>"$results/go-fake.err") || status=1

echo "== bindings (generator check, Python, Go)"
sh tests/bindings/run.sh build "$results" || status=1

echo "== gateway (Python and Node OpenAI SDKs, spec validation, curl-level paths)"
sh tests/gateway/run.sh build "$results" || status=1

python3 scripts/summarize.py "$results" || status=1
exit $status
