#!/bin/sh
# Installs the Debian packages libagentcore needs to build and test, when
# they are missing. Root (or sudo) is needed only when something is missing.
set -eu
pkgs="meson ninja-build pkg-config gcc g++ libcurl4-openssl-dev libjansson-dev
libsqlite3-dev libuv1-dev libfaiss-dev libblas-dev liblapack-dev libgomp1
libh2o-dev libssl-dev clang-14 libclang-rt-14-dev llvm-14 wrk python3 binutils"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "deps: Go is required (https://go.dev/dl) to build the fake upstream" >&2; exit 1; }
