#!/bin/sh
# http_bench.sh [BUILD_DIR]: the HTTP engine's request rate against the fake
# upstream in fixed-answer mode, with the fake's own rate (wrk, 64
# connections) measured in the same run as the reference. The fake runs on
# CPU 0 (GOMAXPROCS=1); wrk and the engine run on CPU 1.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
secs=${DURATION:-3}
command -v wrk >/dev/null || { echo "http_bench: wrk not found (apt-get install wrk)" >&2; exit 2; }
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
GOMAXPROCS=1 taskset -c 0 "$build/tests/fake-upstream" --port 0 --fixed >"$tmp/out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do
    port=$(awk '$1 == "LISTENING" {print $2}' "$tmp/out")
    [ -n "$port" ] && break
    sleep 0.05
done
url="http://127.0.0.1:$port/v1/chat/completions"
cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
wrk_rps=$(taskset -c 1 wrk -t1 -c64 -d"${secs}s" -s "$tmp/post.lua" "$url" | awk '/Requests\/sec/ {print int($2)}')
printf '%-28s %12s\n' "reference" "requests/s"
printf '%-28s %12s\n' "wrk, 64 connections" "$wrk_rps"
echo
taskset -c 1 "$build/bench/http_bench" "$url" "$secs" 1 16 64 | sed "s/^BENCH http_engine/BENCH http_engine wrk_rps=$wrk_rps/"
