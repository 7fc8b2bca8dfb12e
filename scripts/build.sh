#!/bin/sh
# build.sh DIR [meson options...]: configure (once) and build into DIR.
set -eu
dir=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$root/$dir/build.ninja" ]; then
    meson setup "$root/$dir" "$root" "$@" >/dev/null
fi
ninja -C "$root/$dir" >"$root/$dir.build.log" 2>&1 || { tail -n 60 "$root/$dir.build.log"; exit 1; }
