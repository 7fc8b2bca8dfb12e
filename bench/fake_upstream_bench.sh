#!/usr/bin/env bash
# fake_upstream_bench.sh [OUT]: build the fake upstream (into OUT, or a temp
# dir), run it in fixed-answer mode on one core (GOMAXPROCS=1, CPU 0) and
# load it with wrk from the other core (CPU 1): 1 thread, 64 connections,
# 5 s, POST /v1/chat/completions with a small JSON body.
# Prints a small table and one line:
#   BENCH fake_upstream rps=<n> p50_us=<n> p99_us=<n> conns=64 secs=5
# Environment: DURATION (default 5), CONNS (64), MIN_RPS (if set, exit 1
# when the measured rate is lower), GO (go binary).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-5}
conns=${CONNS:-64}
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
command -v wrk >/dev/null || { echo "fake_upstream_bench: wrk not found" >&2; exit 2; }

tmp=$(mktemp -d)
server_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

out=${1:-$tmp/fake-upstream}
case $out in /*) ;; *) out=$PWD/$out ;; esac
# The fake is its own Go module (tests/fakes/upstream/go.mod); build it there.
"$go" -C "$root/tests/fakes/upstream" build -o "$out" .

cpus=$(nproc)
pin_server=() pin_client=()
if command -v taskset >/dev/null && [ "$cpus" -ge 2 ]; then
  pin_server=(taskset -c 0) pin_client=(taskset -c 1)
else
  echo "fake_upstream_bench: fewer than 2 CPUs or no taskset; not pinning" >&2
fi

# The server exits when our end of its stdin closes (--exit-on-stdin-eof).
mkfifo "$tmp/stdin"
GOMAXPROCS=1 "${pin_server[@]}" "$out" --fixed --exit-on-stdin-eof \
  <"$tmp/stdin" >"$tmp/stdout" 2>"$tmp/stderr" &
server_pid=$!
exec 3>"$tmp/stdin"

port=
for _ in $(seq 100); do
  port=$(awk '$1 == "LISTENING" { print $2; exit }' "$tmp/stdout")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/stderr" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "fake_upstream_bench: server did not start" >&2; exit 1; }

cat >"$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"fake-model","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
EOF

"${pin_client[@]}" wrk -t1 -c"$conns" -d"${duration}s" --latency -s "$tmp/post.lua" \
  "http://127.0.0.1:$port/v1/chat/completions" >"$tmp/wrk.txt"

# wrk prints latencies as e.g. 134.00us, 1.20ms, 1.01s.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000; else if (u == "m") n *= 60000000
    printf "%d", n + 0.5 }'
}
rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 + 0.5 }' "$tmp/wrk.txt")
p50=$(to_us "$(awk '$1 == "50%" { print $2 }' "$tmp/wrk.txt")")
p99=$(to_us "$(awk '$1 == "99%" { print $2 }' "$tmp/wrk.txt")")
errors=$(awk '/Non-2xx|Socket errors/ { print }' "$tmp/wrk.txt")

printf '%-28s %s\n' "fake upstream (--fixed)" "GOMAXPROCS=1, ${conns} conns, ${duration}s"
printf '%-28s %12s\n' "requests/s" "$rps" "p50 latency (us)" "$p50" "p99 latency (us)" "$p99"
[ -z "$errors" ] || echo "wrk: $errors"
echo "BENCH fake_upstream rps=$rps p50_us=$p50 p99_us=$p99 conns=$conns secs=$duration"

if [ -n "${MIN_RPS:-}" ] && [ "$rps" -lt "$MIN_RPS" ]; then
  echo "fake_upstream_bench: $rps requests/s is below MIN_RPS=$MIN_RPS" >&2
  exit 1
fi
