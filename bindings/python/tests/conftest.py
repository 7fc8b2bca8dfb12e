"""Fixtures: the fake upstream (started on a free port, stopped at the end)
and cores configured to use it.

The fake is the Go program in tests/fakes/upstream: $FAKE_UPSTREAM names a
built binary, otherwise it is built into a temporary directory with `go build`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]


class Fake:
    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def _req(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def reset(self) -> None:
        self._req("POST", "/_fake/reset", {})

    def last_request(self) -> dict[str, Any]:
        return self._req("GET", "/_fake/requests?last=1")

    def requests(self) -> list[dict[str, Any]]:
        return self._req("GET", "/_fake/requests")

    def script(self, actions: list[dict[str, Any]]) -> None:
        self._req("POST", "/_fake/script", actions)

    def config(self, **extra: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "providers": {"fake": {"kind": "openai", "base_url": f"{self.base}/v1"}},
            "models": [{"name": "m", "provider": "fake", "model": "fake-model"}],
            "default_model": "m",
        }
        cfg.update(extra)
        return cfg


def _fake_binary(tmp: Path) -> str:
    env = os.environ.get("FAKE_UPSTREAM")
    if env:
        return env
    go = shutil.which("go")
    if go is None:
        pytest.skip("no fake upstream: set FAKE_UPSTREAM or install Go")
    out = tmp / "fake-upstream"
    subprocess.run([go, "build", "-o", str(out), "."], cwd=ROOT / "tests" / "fakes" / "upstream",
                   check=True)
    return str(out)


@pytest.fixture(scope="session")
def fake() -> Iterator[Fake]:
    with tempfile.TemporaryDirectory() as tmp:
        binary = _fake_binary(Path(tmp))
        proc = subprocess.Popen([binary, "--port", "0", "--exit-on-stdin-eof"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().split()
            assert line[:1] == ["LISTENING"], f"fake upstream said {line!r}"
            yield Fake(int(line[1]))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def core(fake: Fake) -> Iterator[Any]:
    import agentcore

    fake.reset()
    with agentcore.Core(fake.config()) as c:
        yield c


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def content(answer: dict[str, Any]) -> str:
    return answer["choices"][0]["message"]["content"]
