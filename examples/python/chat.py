#!/usr/bin/env python3
"""A session with memory and a streamed answer, through the Python binding.

    python3 chat.py CONFIG.json
    AGENTCORE_CONFIG='{"providers": ...}' python3 chat.py

CONFIG is the library's JSON configuration (docs/config.md), as a file or,
in $AGENTCORE_CONFIG, as a file name or JSON text. The same program is in
examples/go.
"""
from __future__ import annotations

import os
import sys

import agentcore


def load_config() -> str | None:
    src = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AGENTCORE_CONFIG")
    if not src:
        return None
    if src.lstrip().startswith("{"):
        return src
    with open(src, encoding="utf-8") as f:
        return f.read()


def ask(text: str) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}]}


def main() -> int:
    config = load_config()
    if config is None:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with agentcore.Core(config) as core, core.session(title="example") as session:
            print(f"libagentcore {agentcore.version()}, session {session.id}")

            # Two turns: the second is sent with the first one's history.
            for text in ("My name is Ada. Please remember it.", "What is my name?"):
                answer = session.chat(ask(text))
                print(f"> {text}\n{answer['choices'][0]['message']['content']}")

            # A streamed answer: chunks as they arrive.
            text = "Tell me a short story about a lighthouse."
            print(f"> {text}")
            for chunk in session.chat_stream(ask(text)):
                for choice in chunk.get("choices", []):
                    print(choice["delta"].get("content") or "", end="", flush=True)
            print()
            print(f"({len(session.messages())} messages stored)")
    except agentcore.AgentcoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
