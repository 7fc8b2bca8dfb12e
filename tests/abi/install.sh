#!/bin/sh
# Installs the build into a temporary DESTDIR and compiles and runs
# examples/embed/ (C and C++) against the installed copy, found only
# through pkg-config.
# Usage: install.sh BUILD_DIR SOURCE_DIR CC CXX
build=$1 src=$2 cc=${3:-cc} cxx=${4:-c++}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
step() {
    name=$1; shift
    if "$@" >"$tmp/log" 2>&1; then
        echo "ok $name"; passed=$((passed + 1))
    else
        echo "FAIL $name"; sed 's/^/  /' "$tmp/log" | tail -n 40; failed=$((failed + 1))
    fi
}
step install_into_a_temporary_prefix meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet
pcdir=$(dirname "$(find "$tmp/root" -name agentcore.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
libdir=$(dirname "$(find "$tmp/root" -name 'libagentcore.so' | head -n 1)")
step pkg_config_finds_agentcore pkg-config --exists agentcore
cflags=$(pkg-config --cflags agentcore) libs=$(pkg-config --libs agentcore)
step embed_c_compiles_against_installed_copy \
    $cc -std=c11 -Wall -Wextra -Werror $cflags "$src/examples/embed/embed.c" -o "$tmp/embed_c" $libs
step embed_cpp_compiles_against_installed_copy \
    $cxx -std=c++17 -Wall -Wextra -Werror $cflags "$src/examples/embed/embed.cpp" -o "$tmp/embed_cpp" $libs
step embed_c_runs_against_installed_library env LD_LIBRARY_PATH="$libdir" "$tmp/embed_c"
step embed_cpp_runs_against_installed_library env LD_LIBRARY_PATH="$libdir" "$tmp/embed_cpp"
step embed_c_links_the_installed_library_not_the_build sh -c \
    "LD_LIBRARY_PATH='$libdir' ldd '$tmp/embed_c' | grep -q '$libdir/libagentcore.so'"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
