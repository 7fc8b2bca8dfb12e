#!/bin/sh
# go-build.sh PACKAGE_DIR OUTPUT: build a Go main package into OUTPUT
# (used by meson for the fake upstream). Standard library only; no network.
set -e
out=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
cd "$1"
exec go build -o "$out" .
