#!/bin/sh
# The shared library exports exactly the functions declared in the header
# (AC_API lines), nothing more and nothing less.
# Usage: exports.sh HEADER LIBAGENTCORE_SO
header=$1 so=$2
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
sed -n 's/^AC_API[^(]*[ *]\(ac_[a-z0-9_]*\)(.*/\1/p' "$header" | sort -u >"$tmp/declared"
nm -D --defined-only "$so" | awk '$2 ~ /^[TtWwDdBbRr]$/ {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
passed=0 failed=0
if [ -s "$tmp/declared" ]; then
    echo "ok header_declares_functions ($(wc -l <"$tmp/declared"))"; passed=$((passed + 1))
else
    echo "FAIL header_declares_functions"; failed=$((failed + 1))
fi
if cmp -s "$tmp/declared" "$tmp/exported"; then
    echo "ok shared_library_exports_exactly_the_header_functions"; passed=$((passed + 1))
else
    echo "FAIL shared_library_exports_exactly_the_header_functions"
    echo "  declared but not exported:"; comm -23 "$tmp/declared" "$tmp/exported" | sed 's/^/    /'
    echo "  exported but not declared:"; comm -13 "$tmp/declared" "$tmp/exported" | sed 's/^/    /'
    failed=$((failed + 1))
fi
if readelf -d "$so" | grep -q 'SONAME.*libagentcore\.so\.[0-9]*\]'; then
    echo "ok soname_follows_the_major_version"; passed=$((passed + 1))
else
    echo "FAIL soname_follows_the_major_version"; readelf -d "$so" | grep SONAME; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
