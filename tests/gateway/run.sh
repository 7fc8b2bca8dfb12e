#!/bin/sh
# run.sh BUILD_DIR RESULTS_DIR — the agentcore-gateway suites.
#
# Installs what the tests need outside the tree (a venv with the openai
# Python SDK, and openai@6 + ajv in an npm cache dir), then runs
#   1. pytest tests/gateway        -> RESULTS_DIR/pytest-gateway.txt (summary line)
#   2. node --test tests/gateway/node -> RESULTS_DIR/node-gateway.counts ("N passed, N failed")
# Servers run on 127.0.0.1 only, on free ports, and are stopped by the tests.
# Exits non-zero when anything failed or could not run.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR RESULTS_DIR" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
mkdir -p "$2"
results=$(cd "$2" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}
venv=$cache/agentcore-gateway-venv
npmdir=$cache/agentcore-gateway-npm
status=0

fail_both() {
    echo "$1" >&2
    echo "0 passed, 1 failed ($1)" >"$results/pytest-gateway.txt"
    echo "0 passed, 1 failed" >"$results/node-gateway.counts"
    exit 1
}

gw_bin=$build/examples/gateway/agentcore-gateway
[ -x "$gw_bin" ] || fail_both "gateway not built: $gw_bin"

# the fake upstream: meson builds it with the tests; else build it here
fake_bin=$build/tests/fake-upstream
if [ ! -x "$fake_bin" ]; then
    mkdir -p "$cache/agentcore-gateway-bin"
    fake_bin=$cache/agentcore-gateway-bin/fake-upstream
    (cd "$root/tests/fakes/upstream" && go build -o "$fake_bin" .) || fail_both "cannot build the fake upstream"
fi

# Python: a venv that sees the system's pytest, plus the openai SDK
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv --system-site-packages "$venv" || fail_both "cannot create $venv"
fi
"$venv/bin/python" -c "import pytest" 2>/dev/null ||
    "$venv/bin/pip" install -q pytest >"$results/pip-gateway.log" 2>&1
"$venv/bin/python" -c "import openai" 2>/dev/null ||
    "$venv/bin/pip" install -q "openai>=1.40" >>"$results/pip-gateway.log" 2>&1 ||
    echo "gateway: pip install openai failed (SDK tests will be skipped); see pip-gateway.log" >&2

# Node: openai v6 and ajv, outside the tracked files
mkdir -p "$npmdir"
[ -f "$npmdir/package.json" ] || echo '{"name":"agentcore-gateway-tests","private":true}' >"$npmdir/package.json"
need_npm=0
node -e "process.exit(require('$npmdir/node_modules/openai/package.json').version.startsWith('6.') ? 0 : 1)" \
    2>/dev/null || need_npm=1
[ -d "$npmdir/node_modules/ajv" ] && [ -d "$npmdir/node_modules/ajv-formats" ] || need_npm=1
if [ $need_npm -eq 1 ]; then
    (cd "$npmdir" && npm install --no-audit --no-fund --loglevel=error openai@6 ajv@8 ajv-formats@3) \
        >"$results/npm-gateway.log" 2>&1 || echo "gateway: npm install failed; see npm-gateway.log" >&2
fi

spec=$root/../shared/specs/openai-openapi.json
[ -f "$spec" ] || spec=/work/shared/specs/openai-openapi.json
captures=$results/gateway-captures
rm -rf "$captures"
mkdir -p "$captures"

export GW_BIN="$gw_bin" FAKE_BIN="$fake_bin" GW_CAPTURE="$captures" GW_SPEC="$spec" GW_NPM_DIR="$npmdir"

echo "== gateway: pytest"
(cd "$root/tests/gateway" &&
    "$venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$results/pytest-gateway.xml" . \
        >"$results/pytest-gateway.log" 2>&1)
rc=$?
summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped)|no tests ran' "$results/pytest-gateway.log" | tail -n 1 | sed 's/^=* *//; s/ *=*$//')
[ -n "$summary" ] || summary="0 passed, 1 failed (pytest did not run; see pytest-gateway.log)"
echo "$summary" >"$results/pytest-gateway.txt"
echo "$summary"
[ $rc -eq 0 ] || { status=1; tail -n 40 "$results/pytest-gateway.log"; }

echo "== gateway: node --test"
(cd "$root/tests/gateway/node" && node --test gateway.test.mjs >"$results/node-gateway.log" 2>&1)
rc=$?
pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$results/node-gateway.log" | tail -n 1)
failn=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$results/node-gateway.log" | tail -n 1)
[ -n "$pass" ] || pass=0
[ -n "$failn" ] || failn=1
[ $rc -eq 0 ] || [ "$failn" -gt 0 ] || failn=1
echo "$pass passed, $failn failed" >"$results/node-gateway.counts"
echo "node: $pass passed, $failn failed"
[ $rc -eq 0 ] && [ "$failn" -eq 0 ] || { status=1; grep -E '^not ok|error:' "$results/node-gateway.log" | head -n 20; }

exit $status
