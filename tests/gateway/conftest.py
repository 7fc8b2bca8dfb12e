"""Fixtures for the agentcore-gateway tests.

Every server runs on 127.0.0.1 on a free port and is stopped at the end:
the fake upstream (tests/fakes/upstream) once per session, gateways per test
module or per test with their own configuration.

Environment (set by tests/gateway/run.sh):
  GW_BIN        the agentcore-gateway binary
  FAKE_BIN      the fake-upstream binary
  GW_CAPTURE    a directory where raw answers are written for schema
                validation by the Node suite (optional)
"""
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

GW_BIN = os.environ.get("GW_BIN", "")
FAKE_BIN = os.environ.get("FAKE_BIN", "")
CAPTURE = os.environ.get("GW_CAPTURE", "")

KEY_A = "sk-tenant-a-0123456789"
KEY_B = "sk-tenant-b-0123456789"


def _read_listening(proc, what, timeout=15.0):
    """Wait for the 'LISTENING <port>' line a server prints on stdout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"{what} exited with {proc.returncode}: {err}")
            continue
        line = line.strip()
        if line.startswith("LISTENING "):
            return int(line.split()[1])
    raise RuntimeError(f"{what} did not print LISTENING in {timeout}s")


class Fake:
    def __init__(self, fixed=False):
        args = [FAKE_BIN, "--port", "0", "--exit-on-stdin-eof"] + (["--fixed"] if fixed else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.port = _read_listening(self.proc, "fake-upstream")
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, obj=None):
        data = json.dumps(obj).encode() if obj is not None else b""
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return json.loads(body) if body else None

    def stats(self):
        return self.get("/_fake/stats")

    def last_request(self):
        return self.get("/_fake/requests?last=1")

    def reset(self):
        self.post("/_fake/reset")

    def script(self, actions):
        return self.post("/_fake/script", actions)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def library_config(fake_url, **extra):
    cfg = {
        "providers": {
            "fake": {"kind": "openai", "base_url": fake_url + "/v1", "api_key_env": "",
                     "max_retries": 0},
        },
        "http": {"max_retries": 0, "retry_base_ms": 1, "retry_max_ms": 5},
        "models": [
            {"name": "fast", "provider": "fake", "model": "fake-1"},
            {"name": "slowpoke", "provider": "fake", "model": "fake-slow"},
            {"name": "emb", "provider": "fake", "model": "fake-emb"},
        ],
        "default_model": "fast",
        "router": {"retries": {"provider": {"retries": 0}, "rate_limited": {"retries": 0},
                               "timeout": {"retries": 0}, "network": {"retries": 0}},
                   # error tests must not open the circuit for the tests after them
                   "health": {"failure_threshold": 1000, "window_ms": 1000, "cooldown_ms": 1}},
    }
    cfg.update(extra)
    return cfg


class Gateway:
    def __init__(self, fake, config=None, keys=None, limits=None, listen="127.0.0.1:0",
                 agentcore=None, extra_args=()):
        cfg = dict(config or {})
        cfg.setdefault("listen", listen)
        if keys is not None:
            cfg["api_keys"] = keys
        if limits is not None:
            cfg["limits"] = limits
        cfg.setdefault("agentcore", agentcore if agentcore is not None
                       else library_config(fake.url))
        fd, self.config_path = tempfile.mkstemp(prefix="gw-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f)
        self.proc = subprocess.Popen([GW_BIN, "--config", self.config_path, *extra_args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.port = _read_listening(self.proc, "agentcore-gateway")
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = None

    def request(self, method, path, body=None, headers=None, key=None, timeout=30):
        """One request on a fresh connection: (status, headers dict, parsed or raw body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        k = key if key is not None else self.key
        if k:
            h["Authorization"] = "Bearer " + k
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return r.status, hdrs, parsed

    def stream(self, body, headers=None, key=None, timeout=30):
        """A streamed chat request: (status, headers, list of data payloads as text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        k = key if key is not None else self.key
        if k:
            h["Authorization"] = "Bearer " + k
        h.update(headers or {})
        body = dict(body)
        body["stream"] = True
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers=h)
        r = conn.getresponse()
        raw = r.read().decode()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        if r.status != 200:
            return r.status, hdrs, json.loads(raw)
        events = []
        for block in raw.split("\n\n"):
            if block.startswith("data: "):
                events.append(block[6:])
            elif block.strip():
                raise AssertionError(f"not an SSE data event: {block!r}")
        return r.status, hdrs, events

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self.config_path)
        except OSError:
            pass
        return self.proc.returncode


def capture(schema, obj, name):
    """Keep a raw answer for the Node suite's ajv validation."""
    if not CAPTURE:
        return
    os.makedirs(CAPTURE, exist_ok=True)
    path = os.path.join(CAPTURE, f"py-{name}-{time.time_ns()}.json")
    with open(path, "w") as f:
        json.dump({"schema": schema, "name": name, "body": obj}, f)


@pytest.fixture(scope="session")
def fake():
    if not FAKE_BIN or not GW_BIN:
        pytest.exit("GW_BIN and FAKE_BIN must be set (run tests/gateway/run.sh)", 2)
    f = Fake()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def gw(fake):
    g = Gateway(fake)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gw_keys(fake):
    """A gateway with two tenants' keys and small limits."""
    g = Gateway(fake, keys={KEY_A: "tenant-a", KEY_B: "tenant-b"},
                limits={"max_body_bytes": 65536, "max_header_bytes": 4096,
                        "client_timeout_ms": 500})
    g.key = KEY_A
    yield g
    g.stop()


@pytest.fixture(autouse=True)
def _reset_fake(request):
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
    yield


def user(text, model="fast", **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    body.update(extra)
    return body


def directive(action):
    return " [[fake:" + json.dumps(action) + "]]"
