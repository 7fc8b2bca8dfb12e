#!/usr/bin/env python3
"""Sums the results of every suite into one line "N passed, N failed".

Reads the results folder written by scripts/test.sh:
  *.testlog.json  meson's test log: each test program prints "ok NAME" /
                  "FAIL NAME" lines and "N passed, N failed"; a program that
                  died without that line counts as one failure.
  go-*.json       `go test -json` streams: one count per test (not subtests'
                  parents twice: only leaf results are counted).
  pytest-*.txt    pytest's summary line.
  *.counts        "N passed, N failed" written by other runners.
"""
import json
import os
import re
import sys

LINE = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed", re.M)


def meson(path):
    p = f = 0
    failed_names = []
    with open(path) as fh:
        for raw in fh:
            t = json.loads(raw)
            out = t.get("stdout") or ""
            m = LINE.findall(out)
            ok = t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            if m:
                tp, tf = int(m[-1][0]), int(m[-1][1])
                if not ok and tf == 0:
                    tf = 1  # printed a clean summary but exited non-zero (e.g. a leak report)
                p += tp
                f += tf
            else:
                if ok:
                    p += 1
                else:
                    f += 1
            if not ok:
                failed_names.append(t.get("name"))
    return p, f, failed_names


def gotest(path):
    leaf = {}
    parents = set()
    pkg_failed = set()
    with open(path) as fh:
        for raw in fh:
            raw = raw.strip()
            if not raw.startswith("{"):
                continue
            e = json.loads(raw)
            test = e.get("Test")
            if not test:
                if e.get("Action") == "fail":
                    pkg_failed.add(e.get("Package"))
                continue
            if "/" in test:
                parents.add(test.rsplit("/", 1)[0])
            if e.get("Action") in ("pass", "fail", "skip"):
                leaf[(e.get("Package"), test)] = e["Action"]
    p = f = 0
    names = []
    for (pkg, test), action in leaf.items():
        if test in parents:
            continue
        if action == "pass":
            p += 1
        elif action == "fail":
            f += 1
            names.append(test)
    # a package that failed without a failing test (build error, panic, timeout)
    for pkg in pkg_failed:
        if not any(k[0] == pkg and a == "fail" for k, a in leaf.items()):
            f += 1
            names.append(f"{pkg} (package)")
    if p == 0 and f == 0:
        f, names = 1, ["no go test ran"]
    return p, f, names


PYTEST = re.compile(r"^=*\s*(.*\b(?:passed|failed|error|errors|no tests ran)\b.*?)\s*=*$", re.M)


def counts(path):
    with open(path) as fh:
        text = fh.read()
    m = LINE.findall(text)
    if m:
        return int(m[-1][0]), int(m[-1][1]), []
    # pytest's own summary: "56 passed, 1 skipped in 5.00s", "2 failed, 3 passed"
    lines = PYTEST.findall(text)
    if lines:
        last = lines[-1]
        get = lambda word: sum(int(n) for n in re.findall(r"(\d+) " + word + r"\b", last))
        failed = get("failed") + get("errors?")
        return get("passed"), failed, ([os.path.basename(path)] if failed else [])
    return 0, 1, [os.path.basename(path)]


def main():
    d = sys.argv[1]
    total_p = total_f = 0
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name.endswith(".testlog.json"):
            p, f, names = meson(path)
        elif name.startswith("go-") and name.endswith(".json"):
            p, f, names = gotest(path)
        elif name.endswith(".counts") or (name.startswith("pytest-") and name.endswith(".txt")):
            p, f, names = counts(path)
        else:
            continue
        label = name.split(".")[0]
        print(f"  {label:<20} {p:5d} passed, {f:3d} failed" + (f"  ({', '.join(map(str, names[:8]))})" if names else ""))
        total_p += p
        total_f += f
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
