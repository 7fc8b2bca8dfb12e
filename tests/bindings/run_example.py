#!/usr/bin/env python3
"""run_example.py FAKE_UPSTREAM CMD [ARGS...]: start the fake upstream on a
free port, run an example program with $AGENTCORE_CONFIG pointing at it, and
check that its output shows a two-turn session and a streamed answer.
Exits 0 when it does."""
import json
import os
import subprocess
import sys


def main() -> int:
    fake, cmd = sys.argv[1], sys.argv[2:]
    proc = subprocess.Popen([fake, "--port", "0", "--exit-on-stdin-eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        if line[:1] != ["LISTENING"]:
            print(f"fake upstream said {line!r}", file=sys.stderr)
            return 1
        cfg = {
            "providers": {"fake": {"kind": "openai", "base_url": f"http://127.0.0.1:{line[1]}/v1"}},
            "models": [{"name": "m", "provider": "fake", "model": "fake-model"}],
            "default_model": "m",
        }
        env = dict(os.environ, AGENTCORE_CONFIG=json.dumps(cfg))
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        sys.stdout.write(run.stdout)
        sys.stderr.write(run.stderr)
        want = ["fake reply to: My name is Ada. Please remember it.",
                "fake reply to: What is my name?",
                "fake reply to: Tell me a short story about a lighthouse.",
                "(6 messages stored)"]
        missing = [w for w in want if w not in run.stdout]
        if run.returncode != 0 or missing:
            print(f"example failed: exit {run.returncode}, missing {missing}", file=sys.stderr)
            return 1
        return 0
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
