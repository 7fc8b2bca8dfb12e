#!/bin/sh
# gateway_bench.sh [BUILD_DIR] — added latency and throughput of
# agentcore-gateway, against the same fake upstream (fixed-answer mode)
# reached three ways in one run: directly, through agentcore-gateway, and
# through the Portkey gateway (npm @portkey-ai/gateway, custom host header).
# A benchmark, never run by the tests. Loopback only.
#
# Modes:
#   latency     one connection, sequential; and open-loop at fixed offered
#               rates (2,000 and 10,000 req/s over 64 connections), latency
#               measured from the moment a request was due (no coordinated
#               omission) by a small Go load generator built here
#   throughput  wrk, 64 connections
# Pinning (2 cores): the gateway under test (agentcore-gateway or Portkey) on
# core 0; the fake upstream and the load generators on core 1.
#
# Environment: BENCH_SECONDS (default 5) per measurement.
# Output: a table and one line "BENCH gateway key=value ...".
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
secs=${BENCH_SECONDS:-5}
cache=${XDG_CACHE_HOME:-$HOME/.cache}
npmdir=$cache/agentcore-bench-npm
gw_bin=$build/examples/gateway/agentcore-gateway
tmp=$(mktemp -d /tmp/gateway-bench.XXXXXX)
pids=""

cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

[ -x "$gw_bin" ] || { echo "not built: $gw_bin" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "taskset is needed (util-linux)" >&2; exit 1; }

# ---- tools -------------------------------------------------------------------
(cd "$root/tests/fakes/upstream" && go build -o "$tmp/fake-upstream" .)

mkdir -p "$tmp/loadgen"
cat >"$tmp/loadgen/go.mod" <<'EOF'
module loadgen

go 1.22
EOF
cat >"$tmp/loadgen/main.go" <<'EOF'
// loadgen: HTTP/1.1 keep-alive load with microsecond latency percentiles.
//   -seq: one connection, closed loop.  -rate R: open loop over -conns
//   connections; latency counts from when a request was due.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func readResponse(r *bufio.Reader) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(f[1])
	clen, chunked := -1, false
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if h == "\r\n" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if k == "content-length" {
			clen, _ = strconv.Atoi(v)
		} else if k == "transfer-encoding" && strings.Contains(strings.ToLower(v), "chunked") {
			chunked = true
		}
	}
	if chunked {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return 0, err
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.Split(l, ";")[0]), 16, 64)
			if n == 0 {
				_, err = r.ReadString('\n')
				return status, err
			}
			if _, err = io.CopyN(io.Discard, r, n+2); err != nil {
				return 0, err
			}
		}
	}
	if clen > 0 {
		_, err = io.CopyN(io.Discard, r, int64(clen))
	}
	return status, err
}

type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(addr string) *conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c.(*net.TCPConn).SetNoDelay(true)
	return &conn{c, bufio.NewReaderSize(c, 65536)}
}

func pct(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(v)-1))
	return v[i]
}

func main() {
	addr := flag.String("addr", "", "host:port")
	path := flag.String("path", "/v1/chat/completions", "")
	bodyFile := flag.String("body", "", "request body file")
	hdrs := flag.String("headers", "", "extra headers, '|' separated")
	rate := flag.Float64("rate", 0, "open-loop rate (req/s); 0 = sequential")
	conns := flag.Int("conns", 64, "connections (open loop)")
	dur := flag.Duration("d", 5*time.Second, "duration")
	flag.Parse()
	body, _ := os.ReadFile(*bodyFile)
	var extra strings.Builder
	for _, h := range strings.Split(*hdrs, "|") {
		if h != "" {
			extra.WriteString(h + "\r\n")
		}
	}
	req := []byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
		*path, len(body), extra.String(), body))

	var mu sync.Mutex
	lat := make([]float64, 0, 1<<20)
	errs, non2xx, dropped := 0, 0, 0
	do := func(c *conn) (int, error) {
		if _, err := c.c.Write(req); err != nil {
			return 0, err
		}
		return readResponse(c.r)
	}
	start := time.Now()
	if *rate <= 0 {
		c := dial(*addr)
		for time.Since(start) < *dur {
			t := time.Now()
			st, err := do(c)
			d := time.Since(t)
			if err != nil {
				errs++
				c = dial(*addr)
				continue
			}
			if st/100 != 2 {
				non2xx++
			}
			lat = append(lat, float64(d.Nanoseconds())/1000)
		}
	} else {
		tickets := make(chan time.Time, 1<<20)
		var wg sync.WaitGroup
		for i := 0; i < *conns; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := dial(*addr)
				// a server far below the offered rate is not waited for
				// beyond 2 s past the run: what is left is counted as dropped
				deadline := start.Add(*dur + 2*time.Second)
				for due := range tickets {
					if time.Now().After(deadline) {
						mu.Lock()
						dropped++
						mu.Unlock()
						continue
					}
					st, err := do(c)
					d := time.Since(due)
					mu.Lock()
					if err != nil {
						errs++
					} else {
						if st/100 != 2 {
							non2xx++
						}
						lat = append(lat, float64(d.Nanoseconds())/1000)
					}
					mu.Unlock()
					if err != nil {
						c = dial(*addr)
					}
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / *rate)
		n := int(dur.Seconds() * *rate)
		for i := 0; i < n; i++ {
			due := start.Add(time.Duration(i) * interval)
			if w := time.Until(due); w > 0 {
				time.Sleep(w)
			}
			// due: when this request should have gone out, or when the
			// generator itself got to it, whichever is later, so that the
			// generator's own sleep overshoot is not charged to the server
			now := time.Now()
			if now.After(due) {
				due = now
			}
			tickets <- due
		}
		close(tickets)
		wg.Wait()
	}
	el := time.Since(start).Seconds()
	sort.Float64s(lat)
	fmt.Printf("n=%d rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%d non2xx=%d dropped=%d\n",
		len(lat), float64(len(lat))/el, pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 99.9),
		pct(lat, 100), errs, non2xx, dropped)
}
EOF
(cd "$tmp/loadgen" && go build -o "$tmp/lg" .)

if [ ! -f "$npmdir/node_modules/@portkey-ai/gateway/build/start-server.js" ]; then
    mkdir -p "$npmdir"
    [ -f "$npmdir/package.json" ] || echo '{"name":"agentcore-bench","private":true}' >"$npmdir/package.json"
    (cd "$npmdir" && npm install --no-audit --no-fund --loglevel=error @portkey-ai/gateway@1.15.2) >&2
fi

# ---- servers -------------------------------------------------------------------
wait_listen() { # FILE: the port from a "LISTENING <port>" line
    i=0
    while [ $i -lt 100 ]; do
        p=$(sed -n 's/^LISTENING \([0-9]*\).*/\1/p' "$1" 2>/dev/null | head -n 1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
        i=$((i + 1))
    done
    echo "no LISTENING line in $1" >&2
    return 1
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

mkfifo "$tmp/fake.in"
taskset -c 1 "$tmp/fake-upstream" --port 0 --fixed --exit-on-stdin-eof <"$tmp/fake.in" >"$tmp/fake.out" 2>&1 &
pids="$pids $!"
exec 9>"$tmp/fake.in" # keeps the fake's stdin open until this script ends
fake_port=$(wait_listen "$tmp/fake.out")

cat >"$tmp/gw.json" <<EOF
{"listen": "127.0.0.1:0",
 "agentcore": {
   "providers": {"fake": {"kind": "openai", "base_url": "http://127.0.0.1:$fake_port/v1", "api_key_env": ""}},
   "models": [{"name": "fast", "provider": "fake", "model": "fake-1"}],
   "default_model": "fast"}}
EOF
taskset -c 0 "$gw_bin" --config "$tmp/gw.json" >"$tmp/gw.out" 2>"$tmp/gw.err" </dev/null &
pids="$pids $!"
gw_port=$(wait_listen "$tmp/gw.out")

pk_port=$(free_port)
(cd "$npmdir" && TRUSTED_CUSTOM_HOSTS=127.0.0.1 exec taskset -c 0 node \
    node_modules/@portkey-ai/gateway/build/start-server.js --port="$pk_port" --headless \
    >"$tmp/portkey.out" 2>&1 </dev/null) &
pids="$pids $!"
i=0
until curl -s -o /dev/null "http://127.0.0.1:$pk_port/" 2>/dev/null || [ $i -gt 100 ]; do
    sleep 0.2
    i=$((i + 1))
done

printf '%s' '{"model":"fake-1","messages":[{"role":"user","content":"hello"}]}' >"$tmp/direct.json"
printf '%s' '{"model":"fast","messages":[{"role":"user","content":"hello"}]}' >"$tmp/gw.json.body"
cp "$tmp/direct.json" "$tmp/pk.json"
pk_hdrs="x-portkey-provider: openai|x-portkey-custom-host: http://127.0.0.1:$fake_port/v1|Authorization: Bearer unused"

# a check that each path answers 200
for spec in "direct $fake_port $tmp/direct.json" "gateway $gw_port $tmp/gw.json.body" "portkey $pk_port $tmp/pk.json"; do
    set -- $spec
    h=""
    [ "$1" = portkey ] && h=$pk_hdrs
    out=$(taskset -c 1 "$tmp/lg" -addr "127.0.0.1:$2" -body "$3" -headers "$h" -d 1s)
    case "$out" in *"errors=0 non2xx=0 "*) ;; *) echo "$1 does not answer 200: $out" >&2; exit 1 ;; esac
done

measure() { # NAME PORT BODY RATE -> the loadgen's line
    h=""
    [ "$1" = portkey ] && h=$pk_hdrs
    if [ "$4" = 0 ]; then
        taskset -c 1 "$tmp/lg" -addr "127.0.0.1:$2" -body "$3" -headers "$h" -d "${secs}s"
    else
        taskset -c 1 "$tmp/lg" -addr "127.0.0.1:$2" -body "$3" -headers "$h" -d "${secs}s" -rate "$4" -conns 64
    fi
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

wrk_rps() { # NAME PORT BODY
    lua=$tmp/$1.lua
    body=$(cat "$3")
    {
        echo 'wrk.method = "POST"'
        echo "wrk.body = '$body'"
        echo 'wrk.headers["Content-Type"] = "application/json"'
        if [ "$1" = portkey ]; then
            echo 'wrk.headers["x-portkey-provider"] = "openai"'
            echo "wrk.headers[\"x-portkey-custom-host\"] = \"http://127.0.0.1:$fake_port/v1\""
            echo 'wrk.headers["Authorization"] = "Bearer unused"'
        fi
    } >"$lua"
    taskset -c 1 wrk -t1 -c64 -d"${secs}s" -s "$lua" "http://127.0.0.1:$2/v1/chat/completions" >"$tmp/$1.wrk" 2>&1
    rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$tmp/$1.wrk")
    errs=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$tmp/$1.wrk")
    echo "${rps:-0} ${errs:-0}"
}

# warm up
for spec in "direct $fake_port $tmp/direct.json" "gateway $gw_port $tmp/gw.json.body" "portkey $pk_port $tmp/pk.json"; do
    set -- $spec
    secs_save=$secs; secs=2; measure "$1" "$2" "$3" 0 >/dev/null; secs=$secs_save
done

echo "gateway bench: ${secs}s per measurement; fake upstream (fixed) and load generators on core 1,"
echo "the gateway under test on core 0; latency in microseconds"
printf '%-9s %-12s %9s %9s %9s %9s %12s\n' path mode p50 p99 p99.9 rps errors
# (rps in the rate modes is what was served; below the offered rate the path is saturated)
results=""
for spec in "direct $fake_port $tmp/direct.json" "gateway $gw_port $tmp/gw.json.body" "portkey $pk_port $tmp/pk.json"; do
    set -- $spec
    for rate in 0 2000 10000; do
        line=$(measure "$1" "$2" "$3" "$rate")
        mode=sequential
        [ "$rate" = 0 ] || mode="rate$rate"
        p50=$(field "$line" p50_us)
        p99=$(field "$line" p99_us)
        p999=$(field "$line" p999_us)
        rps=$(field "$line" rps)
        e=$(( $(field "$line" errors) + $(field "$line" non2xx) ))
        d=$(field "$line" dropped)
        [ "${d:-0}" = 0 ] || e="$e+${d}dropped"
        printf '%-9s %-12s %9s %9s %9s %9s %12s\n' "$1" "$mode" "$p50" "$p99" "$p999" "$rps" "$e"
        results="$results $1_${mode}_p50=$p50 $1_${mode}_p99=$p99 $1_${mode}_rps=$rps"
    done
    set -- $(wrk_rps "$1" "$2" "$3")
    printf '%-9s %-12s %9s %9s %9s %9s %12s\n' "${spec%% *}" "wrk-c64" - - - "$1" "$2"
    results="$results ${spec%% *}_wrk_rps=$1"
done

get() { echo "$results" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
added() { awk -v a="$(get "$1")" -v b="$(get "$2")" 'BEGIN { printf "%.1f", a - b }'; }

echo
printf '%-12s %14s %14s %14s %14s\n' mode "gw +p50" "gw +p99" "portkey +p50" "portkey +p99"
line="BENCH gateway"
for mode in sequential rate2000 rate10000; do
    g50=$(added "gateway_${mode}_p50" "direct_${mode}_p50")
    g99=$(added "gateway_${mode}_p99" "direct_${mode}_p99")
    k50=$(added "portkey_${mode}_p50" "direct_${mode}_p50")
    k99=$(added "portkey_${mode}_p99" "direct_${mode}_p99")
    printf '%-12s %14s %14s %14s %14s\n' "$mode" "$g50" "$g99" "$k50" "$k99"
    line="$line ${mode}_added_p50_us=$g50 ${mode}_added_p99_us=$g99 portkey_${mode}_added_p50_us=$k50 portkey_${mode}_added_p99_us=$k99"
done
ratio=$(awk -v g="$(added gateway_sequential_p50 direct_sequential_p50)" \
            -v k="$(added portkey_sequential_p50 direct_sequential_p50)" \
            'BEGIN { if (g <= 0) g = 0.1; printf "%.1f", k / g }')
line="$line direct_rps=$(get direct_wrk_rps) gateway_rps=$(get gateway_wrk_rps) portkey_rps=$(get portkey_wrk_rps) portkey_over_gateway_added_p50=$ratio"
echo
echo "targets: added p99 < 100 us at the fixed rates; >= 30000 req/s through the gateway on one core;"
echo "         added latency > 20x below Portkey's (sequential p50 ratio here: ${ratio}x)"
echo "$line"
