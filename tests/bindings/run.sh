#!/bin/sh
# tests/bindings/run.sh BUILD_DIR [RESULTS_DIR]
#
# Tests the Python and Go bindings against the library built in BUILD_DIR (a
# meson build directory), with the fake upstream:
#   1. bindings/gen/gen.py --check   (generated files current, every header
#                                     function bound)
#   2. pip install of bindings/python into a temporary venv (offline when
#      setuptools and wheel are installed, else the build backend comes from
#      PyPI), then pytest: bindings/python/tests and bindings/gen/tests
#   3. gofmt, go vet and go test -json in bindings/go, go vet of examples/go
# Results, in RESULTS_DIR (default BUILD_DIR/bindings-results):
#   pytest-bindings.txt    pytest's summary line, then "N passed, N failed"
#   pytest-bindings.xml    pytest's JUnit XML
#   go-bindings.json       go test -json
#   bindings-checks.counts "N passed, N failed" of gen --check, pip install,
#                          gofmt, go vet
# Exits non-zero if anything failed.
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [RESULTS_DIR]" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd) || exit 2
results=${2:-$build/bindings-results}
mkdir -p "$results" || exit 2
results=$(cd "$results" && pwd)

lib="$build/libagentcore.so.0"
if [ ! -f "$lib" ]; then
    echo "run.sh: $lib not found (build the library first: ninja -C $build)" >&2
    exit 1
fi

# The uninstalled pkg-config file meson writes for the build tree: -I the
# source include/, -L the build dir (the shared library wins over the static
# one). The loader finds the .so through LD_LIBRARY_PATH.
export PKG_CONFIG_PATH="$build/meson-uninstalled${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AGENTCORE_LIBRARY="$lib"
export CGO_ENABLED=1
export GOTOOLCHAIN=local
# Sanitizer builds: the runtime must come first (the Python/Go host programs
# are not instrumented).
if nm -D "$lib" 2>/dev/null | grep -q __asan_init; then
    asan=$(${CC:-cc} -print-file-name=libasan.so)
    ubsan=$(${CC:-cc} -print-file-name=libubsan.so)
    export LD_PRELOAD="$asan $ubsan"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
fi

work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT INT TERM

checks_p=0 checks_f=0
status=0
ok() { checks_p=$((checks_p + 1)); echo "ok $1"; }
bad() { checks_f=$((checks_f + 1)); status=1; echo "FAIL $1"; }

echo "== fake upstream"
if (cd "$root/tests/fakes/upstream" && go build -o "$work/fake-upstream" .); then
    export FAKE_UPSTREAM="$work/fake-upstream"
else
    echo "run.sh: could not build the fake upstream" >&2
    status=1
fi

echo "== gen.py --check"
if python3 "$root/bindings/gen/gen.py" --check; then ok gen-check; else bad gen-check; fi

echo "== python"
py=python3
# pip builds in its source directory (build/, *.egg-info): build from a copy.
mkdir -p "$work/pysrc"
cp -R "$root/bindings/python/pyproject.toml" "$root/bindings/python/README.md" \
    "$root/bindings/python/agentcore" "$work/pysrc/"
if python3 -m venv --system-site-packages "$work/venv" >/dev/null 2>&1; then
    # Offline when setuptools and wheel are installed; otherwise pip fetches
    # the build backend from PyPI (the package itself has no dependencies).
    if "$work/venv/bin/python" -m pip install --no-build-isolation --no-deps --quiet \
            "$work/pysrc" >"$work/pip.log" 2>&1 ||
       "$work/venv/bin/python" -m pip install --no-deps --quiet \
            "$work/pysrc" >>"$work/pip.log" 2>&1; then
        py="$work/venv/bin/python"
        ok pip-install
    else
        cat "$work/pip.log"
        bad pip-install
    fi
else
    echo "(no venv module: testing the source tree)"
fi
# From a directory outside the source tree, so that the installed package
# is the one imported (or, without a venv, the source tree by PYTHONPATH).
if [ "$py" = python3 ]; then
    export PYTHONPATH="$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
fi
(cd "$work" && "$py" -m pytest -p no:cacheprovider -q -rs \
    --junitxml="$results/pytest-bindings.xml" \
    --rootdir="$root/bindings" "$root/bindings/python/tests" "$root/bindings/gen/tests") \
    >"$results/pytest-bindings.log" 2>&1
rc=$?
tail -n 30 "$results/pytest-bindings.log"
[ $rc -eq 0 ] || status=1
"$py" - "$results/pytest-bindings.xml" "$results/pytest-bindings.log" >"$results/pytest-bindings.txt" <<'EOF'
import re, sys
import xml.etree.ElementTree as ET
xml, log = sys.argv[1], sys.argv[2]
summary = ""
try:
    lines = [l.strip() for l in open(log, encoding="utf-8", errors="replace") if l.strip()]
    summary = next((l for l in reversed(lines) if re.search(r"\d+ (passed|failed|error|skipped)", l)), "")
except OSError:
    pass
p = f = 0
try:
    root = ET.parse(xml).getroot()
    for ts in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        tests = int(ts.get("tests", 0))
        failed = int(ts.get("failures", 0)) + int(ts.get("errors", 0))
        skipped = int(ts.get("skipped", 0))
        p += tests - failed - skipped
        f += failed
except (OSError, ET.ParseError):
    f = 1
if p == 0 and f == 0:
    f = 1  # nothing ran
print(summary.strip("= ") or "pytest did not run")
print(f"{p} passed, {f} failed")
EOF
cat "$results/pytest-bindings.txt"

echo "== go"
cd "$root/bindings/go" || exit 1
unformatted=$(gofmt -l . "$root/examples/go")
if [ -z "$unformatted" ]; then ok gofmt; else echo "gofmt: $unformatted"; bad gofmt; fi
if go vet ./... && (cd "$root/examples/go" && go vet ./...); then ok go-vet; else bad go-vet; fi
go test -count=1 -json ./... >"$results/go-bindings.json" 2>"$results/go-bindings.err"
rc=$?
python3 - "$results/go-bindings.json" <<'EOF'
import json, sys
for raw in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if raw.startswith("{"):
        e = json.loads(raw)
        if e.get("Test") and e.get("Action") in ("pass", "fail", "skip"):
            print(e["Action"], e["Test"])
        elif e.get("Action") == "output" and e.get("Output", "").startswith(("FAIL", "panic", "#")):
            print(e["Output"].rstrip())
EOF
cat "$results/go-bindings.err"
[ $rc -eq 0 ] || status=1

echo "== examples"
if [ -n "${FAKE_UPSTREAM:-}" ]; then
    if "$py" "$root/tests/bindings/run_example.py" "$FAKE_UPSTREAM" \
            "$py" "$root/examples/python/chat.py" >"$work/example-py.log" 2>&1; then
        ok example-python
    else
        cat "$work/example-py.log"; bad example-python
    fi
    if (cd "$root/examples/go" && go build -o "$work/chat-go" .) &&
            python3 "$root/tests/bindings/run_example.py" "$FAKE_UPSTREAM" "$work/chat-go" \
            >"$work/example-go.log" 2>&1; then
        ok example-go
    else
        cat "$work/example-go.log"; bad example-go
    fi
else
    bad examples
fi

echo "$checks_p passed, $checks_f failed" >"$results/bindings-checks.counts"
echo "== bindings: checks $checks_p passed, $checks_f failed; pytest $(tail -n 1 "$results/pytest-bindings.txt"); go test exit $rc"
exit $status
