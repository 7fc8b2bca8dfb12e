#!/bin/sh
# Compiles include/agentcore.h alone as C99, C11 and C++17 with
# -Wall -Wextra -pedantic -Werror, as a consumer would include it.
# Usage: run.sh INCLUDE_DIR CC CXX
inc=$1 cc=${2:-cc} cxx=${3:-c++}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
printf '#include "agentcore.h"\nint main(void) { ac_core *c = 0; (void)c; return ac_version_number() > 0 ? 0 : 1; }\n' >"$tmp/h.c"
printf '#include "agentcore.h"\nint main() { ac_core *c = nullptr; (void)c; return ac_version_number() > 0 ? 0 : 1; }\n' >"$tmp/h.cpp"
check() {
    name=$1; shift
    if "$@" >"$tmp/log" 2>&1; then
        echo "ok header_compiles_alone_as_$name"; passed=$((passed + 1))
    else
        echo "FAIL header_compiles_alone_as_$name"; sed 's/^/  /' "$tmp/log"; failed=$((failed + 1))
    fi
}
flags="-Wall -Wextra -pedantic -Werror -fsyntax-only -I$inc"
check c99 $cc -std=c99 $flags "$tmp/h.c"
check c11 $cc -std=c11 $flags "$tmp/h.c"
check cxx17 $cxx -std=c++17 $flags -x c++ "$tmp/h.cpp"
check c11_with_building_macro $cc -std=c11 -DAC_BUILDING_LIBRARY $flags "$tmp/h.c"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
