"""HTTP-level tests of agentcore-gateway: every error path, headers, stream
framing, concurrency, tenants, disconnects, limits, shutdown and config.
Raw http.client and sockets, against the fake upstream on loopback."""
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (GW_BIN, KEY_A, KEY_B, Gateway, capture, directive, library_config, user)


def assert_error(status, body, want_status, want_code=None, want_type=None):
    assert status == want_status, body
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "param", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str)
    if want_code is not None:
        assert err["code"] == want_code, err
    if want_type is not None:
        assert err["type"] == want_type, err
    capture("ErrorResponse", body, f"error-{want_status}")
    return err


# ---- errors ------------------------------------------------------------------------

def test_invalid_json_is_400(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions", body=b'{"model": "fast", ')
    assert_error(s, b, 400, "invalid_json", "invalid_request_error")


def test_empty_body_is_400(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions", body=b"")
    assert_error(s, b, 400, "invalid_json")


def test_body_not_an_object_is_400(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions", body=b"[1,2]")
    assert_error(s, b, 400, "invalid_json")


def test_invalid_request_names_the_param(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions", body={"model": "fast", "messages": 5})
    err = assert_error(s, b, 400)
    assert "messages" in (err["param"] or "") and "messages" in err["message"]


def test_unknown_model_is_404(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions", body=user("hi", model="no-such-model"))
    err = assert_error(s, b, 404, "model_not_found")
    assert "no-such-model" in err["message"]


def test_unknown_model_for_embeddings_is_404(gw):
    s, _, b = gw.request("POST", "/v1/embeddings", body={"model": "nope", "input": "x"})
    assert_error(s, b, 404, "model_not_found")


def test_unknown_url_is_404(gw):
    s, _, b = gw.request("GET", "/v1/nothing-here")
    assert_error(s, b, 404, "unknown_url")


def test_wrong_method_is_405(gw):
    s, _, b = gw.request("GET", "/v1/chat/completions")
    assert_error(s, b, 405, "method_not_allowed")


def test_upstream_500_is_502_naming_what_was_tried(gw, fake):
    s, _, b = gw.request("POST", "/v1/chat/completions",
                         body=user("x" + directive({"status": 500, "message": "kaboom"})))
    err = assert_error(s, b, 502, want_type="upstream_error")
    assert "kaboom" in err["message"] and "fast" in err["message"]
    assert err["agentcore"]["tried"][0]["model"] == "fast"


def test_upstream_429_is_429(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions",
                         body=user("x" + directive({"status": 429, "message": "slow down",
                                                    "retry_after": "0"})))
    assert_error(s, b, 429, "rate_limit_exceeded")


def test_upstream_malformed_answer_is_502(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions",
                         body=user("x" + directive({"malformed": True})))
    assert_error(s, b, 502)


def test_upstream_context_error_is_400_context_length(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions",
                         body=user("x" + directive({"error": "context"})))
    assert_error(s, b, 400, "context_length_exceeded")


def test_upstream_timeout_is_504(fake):
    cfg = library_config(fake.url)
    cfg["providers"]["fake"]["first_byte_timeout_ms"] = 200
    g = Gateway(fake, agentcore=cfg)
    try:
        s, _, b = g.request("POST", "/v1/chat/completions",
                            body=user("x" + directive({"delay_ms": 2000})))
        assert_error(s, b, 504, "upstream_timeout")
    finally:
        g.stop()


def test_upstream_unreachable_is_502(fake):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    g = Gateway(fake, agentcore=library_config(f"http://127.0.0.1:{dead}"))
    try:
        s, _, b = g.request("POST", "/v1/chat/completions", body=user("hi"))
        err = assert_error(s, b, 502, want_type="upstream_error")
        assert "fast" in err["message"]
    finally:
        g.stop()


def test_budget_exhausted_is_429_with_a_clear_message(fake):
    cfg = library_config(fake.url)
    cfg["models"][0]["price_input"] = 1000000  # $1 per token
    cfg["router"]["tenants"] = {"*": {"daily_usd": 0.5}}
    g = Gateway(fake, agentcore=cfg, keys={KEY_A: "tenant-a"})
    g.key = KEY_A
    try:
        s, _, b = g.request("POST", "/v1/chat/completions", body=user("spend"))
        assert s == 200, b
        s, _, b = g.request("POST", "/v1/chat/completions", body=user("again"))
        err = assert_error(s, b, 429, "budget_exhausted", "insufficient_quota")
        assert "budget" in err["message"] and "tenant-a" in err["message"]
    finally:
        g.stop()


def test_missing_and_wrong_api_key_are_401(gw_keys):
    s, _, b = gw_keys.request("POST", "/v1/chat/completions", body=user("hi"), key="")
    assert_error(s, b, 401, "invalid_api_key")
    s, _, b = gw_keys.request("POST", "/v1/chat/completions", body=user("hi"),
                              key="sk-not-a-known-key")
    assert_error(s, b, 401, "invalid_api_key")
    s, _, b = gw_keys.request("GET", "/v1/models", key="sk-not-a-known-key")
    assert_error(s, b, 401, "invalid_api_key")
    # health and readiness need no key
    s, _, b = gw_keys.request("GET", "/healthz", key="")
    assert s == 200 and b == {"status": "ok"}


def test_body_over_limit_is_413_in_error_shape(gw_keys):
    s, h, b = gw_keys.request("POST", "/v1/chat/completions", body=b"x" * 70000)
    assert h["content-type"].startswith("application/json")
    assert_error(s, b, 413, "request_too_large")


def test_headers_over_limit_is_431(gw_keys):
    s, _, b = gw_keys.request("GET", "/v1/models", headers={"X-Big": "y" * 5000})
    assert_error(s, b, 431, "headers_too_large")


def test_malformed_http_is_400_and_closed(gw):
    # h2o writes this answer itself, below any handler or filter, in text/plain
    # (the one answer that is not in the OpenAI error shape; see docs/gateway.md)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            data += c
    assert data.startswith(b"HTTP/1.1 400"), data


def _read_until_closed(sock, limit=10.0):
    t0 = time.time()
    data = b""
    while time.time() - t0 < limit:
        c = sock.recv(65536)
        if not c:
            break
        data += c
    return time.time() - t0, data


def test_slow_client_is_cut_off(gw_keys):
    # client_timeout_ms = 500: a request whose headers never finish is dropped
    with socket.create_connection(("127.0.0.1", gw_keys.port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        took, _ = _read_until_closed(s)
        assert took < 5
    # and so is a body that stops arriving
    with socket.create_connection(("127.0.0.1", gw_keys.port), timeout=10) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        took, _ = _read_until_closed(s)
        assert took < 5


# ---- answers and headers ------------------------------------------------------------

def test_chat_answer_has_required_fields_and_headers(gw):
    s, h, b = gw.request("POST", "/v1/chat/completions", body=user("hello"),
                         headers={"X-Request-Id": "my-trace-123"})
    assert s == 200, b
    capture("CreateChatCompletionResponse", b, "chat")
    assert b["object"] == "chat.completion"
    ch = b["choices"][0]
    assert ch["message"]["content"] == "fake reply to: hello"
    assert "logprobs" in ch and ch["logprobs"] is None
    assert "refusal" in ch["message"] and ch["message"]["refusal"] is None
    assert h["x-request-id"] == "my-trace-123"
    assert h["x-agentcore-model"] == "fast"
    assert int(h["x-agentcore-overhead-us"]) >= 0
    assert b["agentcore"]["model"] == "fast"


def test_request_ids_are_generated_and_unique(gw):
    ids = {gw.request("GET", "/v1/models")[1]["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_stream_framing_with_usage(gw):
    s, h, events = gw.stream(user("stream me please", stream_options={"include_usage": True}))
    assert s == 200
    assert h["content-type"].startswith("text/event-stream")
    assert h["x-request-id"] and "x-agentcore-overhead-us" in h
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for c in chunks:
        capture("CreateChatCompletionStreamResponse", c, "chunk-usage")
        assert c["object"] == "chat.completion.chunk"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "fake reply to: stream me please"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert sum(1 for c in chunks if c.get("usage")) == 1


def test_stream_without_usage_has_no_usage_chunk(gw):
    s, _, events = gw.stream(user("no usage"))
    assert s == 200 and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["choices"] for c in chunks)
    assert not any(c.get("usage") for c in chunks)


def test_stream_failure_before_first_chunk_is_a_plain_error(gw):
    s, _, b = gw.stream(user("x" + directive({"status": 503, "message": "down"})))
    assert_error(s, b, 502)


def test_stream_failure_after_start_is_an_error_event_then_done(gw):
    s, _, events = gw.stream(user("a fairly long answer to cut" +
                                  directive({"status": 500, "cut_after": 3,
                                             "message": "cut mid-way"})))
    assert s == 200
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert "error" in last and "cut" in last["error"]["message"]
    capture("ErrorResponse", last, "stream-error")


def test_stream_connection_drop_upstream_is_an_error_event(gw):
    s, _, events = gw.stream(user("a fairly long answer to drop" + directive({"cut_after": 3})))
    assert s == 200 and events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])


def test_embeddings_float_and_base64_agree(gw):
    s, h, f = gw.request("POST", "/v1/embeddings", body={"model": "emb", "input": ["a", "b"]})
    assert s == 200, f
    capture("CreateEmbeddingResponse", f, "embeddings-float")
    assert h["x-agentcore-model"] == "emb"
    s, _, b = gw.request("POST", "/v1/embeddings",
                         body={"model": "emb", "input": ["a", "b"], "encoding_format": "base64"})
    assert s == 200, b
    for fe, be in zip(f["data"], b["data"]):
        raw = base64.b64decode(be["embedding"])
        vec = struct.unpack("<%df" % (len(raw) // 4), raw)
        assert len(vec) == len(fe["embedding"]) == 8
        assert all(abs(x - y) < 1e-6 for x, y in zip(vec, fe["embedding"]))


def test_models_lists_aliases_and_profiles(fake):
    cfg = library_config(fake.url)
    cfg["profiles"] = {"support": {"description": "helps", "model": "fast"}}
    g = Gateway(fake, agentcore=cfg)
    try:
        s, _, b = g.request("GET", "/v1/models")
        assert s == 200
        capture("ListModelsResponse", b, "models")
        ids = [m["id"] for m in b["data"]]
        assert {"fast", "emb", "support"} <= set(ids)
        s, _, m = g.request("GET", "/v1/models/support")
        assert s == 200 and m["id"] == "support" and m["object"] == "model"
        s, _, e = g.request("GET", "/v1/models/nope")
        assert_error(s, e, 404, "model_not_found")
    finally:
        g.stop()


def test_health_ready_and_metrics(gw):
    assert gw.request("GET", "/healthz")[0] == 200
    s, _, b = gw.request("GET", "/readyz")
    assert s == 200 and b["status"] == "ready"
    gw.request("POST", "/v1/chat/completions", body=user("count me"))
    s, h, text = gw.request("GET", "/metrics")
    assert s == 200 and h["content-type"].startswith("text/plain")
    text = text.decode() if isinstance(text, bytes) else json.dumps(text)
    assert 'agentcore_gateway_requests_total{endpoint="chat_completions",code="2xx"}' in text
    assert "agentcore_upstream_requests_total" in text  # the library's families


# ---- sessions -----------------------------------------------------------------------

def test_session_by_header_keeps_history_and_strips_ids(gw, fake):
    s, _, b = gw.request("POST", "/v1/chat/completions", body=user("my name is Ada"),
                         headers={"X-Session-Id": "hdr-1"})
    assert s == 200, b
    s, _, b = gw.request("POST", "/v1/chat/completions", body=user("what is my name?"),
                         headers={"X-Session-Id": "hdr-1"})
    assert s == 200, b
    sent = fake.last_request()["body"]
    contents = [m["content"] for m in sent["messages"]]
    assert "my name is Ada" in contents and "what is my name?" in contents
    s, _, b = gw.request("GET", "/v1/sessions/hdr-1/messages")
    assert s == 200 and b["object"] == "list" and len(b["data"]) == 4


def test_session_by_body_keys_are_removed_before_upstream(gw, fake):
    for body in (dict(user("one"), session_id="body-1"),
                 dict(user("two"), metadata={"session_id": "body-1", "other": "x"})):
        s, _, b = gw.request("POST", "/v1/chat/completions", body=body)
        assert s == 200, b
        sent = fake.last_request()["body"]
        assert "session_id" not in sent
        assert "session_id" not in (sent.get("metadata") or {})
    s, _, b = gw.request("GET", "/v1/sessions/body-1")
    assert s == 200 and b["id"] == "body-1" and b["turns"] == 2


def test_session_stream_turn(gw):
    s, _, events = gw.stream(user("streamed turn"), headers={"X-Session-Id": "st-1"})
    assert s == 200 and events[-1] == "[DONE]"
    s, _, b = gw.request("GET", "/v1/sessions/st-1/messages")
    assert [m["message"]["role"] for m in b["data"]] == ["user", "assistant"]


def test_sessions_list_get_delete_and_paging(gw):
    for i in range(3):
        gw.request("POST", "/v1/chat/completions", body=user(f"m{i}"),
                   headers={"X-Session-Id": f"page-{i}"})
    s, _, b = gw.request("GET", "/v1/sessions?limit=2")
    assert s == 200 and b["object"] == "list" and len(b["data"]) == 2
    s, _, b = gw.request("GET", "/v1/sessions/page-0/messages?limit=1")
    assert s == 200 and len(b["data"]) == 1
    s, _, b = gw.request("DELETE", "/v1/sessions/page-0")
    assert s == 200 and b["deleted"] is True
    s, _, b = gw.request("GET", "/v1/sessions/page-0")
    assert_error(s, b, 404, "not_found")
    s, _, b = gw.request("GET", "/v1/sessions?limit=x")
    assert_error(s, b, 400)


def test_bad_session_id_is_400(gw):
    s, _, b = gw.request("POST", "/v1/chat/completions", body=dict(user("x"), session_id=5))
    assert_error(s, b, 400)
    s, _, b = gw.request("POST", "/v1/chat/completions", body=dict(user("x"), session_id=""))
    assert_error(s, b, 400, "invalid_session_id")


# ---- tenants ------------------------------------------------------------------------

def test_tenant_isolation_of_sessions(gw_keys):
    s, _, b = gw_keys.request("POST", "/v1/chat/completions", body=user("secret of A"),
                              headers={"X-Session-Id": "iso-1"}, key=KEY_A)
    assert s == 200, b
    assert gw_keys.request("GET", "/v1/sessions/iso-1", key=KEY_A)[0] == 200
    for method, path in (("GET", "/v1/sessions/iso-1"), ("GET", "/v1/sessions/iso-1/messages"),
                         ("DELETE", "/v1/sessions/iso-1")):
        s, _, b = gw_keys.request(method, path, key=KEY_B)
        assert_error(s, b, 404)
    s, _, b = gw_keys.request("GET", "/v1/sessions", key=KEY_B)
    assert s == 200 and all(x["id"] != "iso-1" for x in b["data"])
    s, _, b = gw_keys.request("GET", "/v1/sessions", key=KEY_A)
    assert any(x["id"] == "iso-1" for x in b["data"])
    # B may use the same id: it is another session, A's history stays apart
    s, _, b = gw_keys.request("POST", "/v1/chat/completions", body=user("B here"),
                              headers={"X-Session-Id": "iso-1"}, key=KEY_B)
    if s == 200:
        s, _, m = gw_keys.request("GET", "/v1/sessions/iso-1/messages", key=KEY_B)
        assert all("secret of A" not in json.dumps(x) for x in m["data"])
    else:
        assert_error(s, b, s)
    s, _, m = gw_keys.request("GET", "/v1/sessions/iso-1/messages", key=KEY_A)
    assert not any("B here" in json.dumps(x) for x in m["data"])


def test_tenant_isolation_of_stores(gw_keys):
    s, _, b = gw_keys.request("POST", "/v1/stores/kb/documents",
                              body={"text": "The launch code is tangerine."}, key=KEY_A)
    assert s == 200, b
    s, _, b = gw_keys.request("POST", "/v1/stores/kb/search", body={"query": "launch code"},
                              key=KEY_A)
    assert s == 200 and any("tangerine" in r["text"] for r in b["results"])
    s, _, b = gw_keys.request("POST", "/v1/stores/kb/search", body={"query": "launch code"},
                              key=KEY_B)
    assert s == 200 and not any("tangerine" in r["text"] for r in b["results"])


def test_store_rejects_paths_and_bad_names(gw_keys):
    s, _, b = gw_keys.request("POST", "/v1/stores/kb/documents", body={"path": "/etc/passwd"})
    assert_error(s, b, 400)
    s, _, b = gw_keys.request("POST", "/v1/stores/bad.name/search", body={"query": "x"})
    assert_error(s, b, 400, "invalid_store_name")


def test_tenant_is_taken_from_the_key_not_the_body(gw_keys, fake):
    body = user("who am i", agentcore={"tenant": "tenant-b"})
    s, _, b = gw_keys.request("POST", "/v1/chat/completions", body=body, key=KEY_A)
    assert s == 200, b
    assert b["agentcore"]["tenant"] == "tenant-a"


# ---- concurrency, disconnects ---------------------------------------------------------

def test_concurrent_streams(gw, fake):
    n = 24
    results = [None] * n

    def one(i):
        results[i] = gw.stream(user(f"stream number {i}" + directive({"trickle_ms": 20})))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, (s, _, events) in enumerate(results):
        assert s == 200 and events[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e)["choices"])
        assert text == f"fake reply to: stream number {i}"
    assert fake.stats()["max_in_flight"] >= n // 2


def _wait_cancelled(fake, want, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fake.stats()["cancelled"] >= want:
            return True
        time.sleep(0.05)
    return False


def test_client_disconnect_mid_stream_cancels_upstream(gw, fake):
    body = json.dumps(user("tell me a long story " * 4 + directive({"trickle_ms": 100}),
                           stream=True)).encode()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    s.close()
    assert _wait_cancelled(fake, 1), fake.stats()
    assert fake.stats()["in_flight"] == 0


def test_client_disconnect_while_waiting_cancels_upstream(gw, fake):
    body = json.dumps(user("slow" + directive({"delay_ms": 5000}))).encode()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body)
    time.sleep(0.3)
    s.close()
    assert _wait_cancelled(fake, 1), fake.stats()


# ---- shutdown and config ---------------------------------------------------------------

def test_sigterm_finishes_streams_then_exits(fake):
    g = Gateway(fake)
    out = {}

    def run():
        out["r"] = g.stream(user("finish me " * 3 + directive({"trickle_ms": 40})))

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.3)
    g.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert g.proc.wait(10) == 0
    s, _, events = out["r"]
    assert s == 200 and events[-1] == "[DONE]"
    assert not any("error" in json.loads(e) for e in events[:-1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", g.port), timeout=2).close()
    g.stop()


def test_sigterm_bound_cuts_long_streams(fake):
    g = Gateway(fake, limits={"shutdown_timeout_ms": 300})
    out = {}

    def run():
        out["r"] = g.stream(user("never ending " * 20 + directive({"trickle_ms": 200})))

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    t0 = time.time()
    g.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert g.proc.wait(10) == 0
    assert time.time() - t0 < 5
    s, _, events = out["r"]
    assert s == 200 and events[-1] == "[DONE]"
    assert "shutting down" in json.loads(events[-2])["error"]["message"]
    g.stop()


def run_gateway_expect_fail(config):
    path = "/tmp/gw-bad-%d.json" % os.getpid()
    with open(path, "w") as f:
        json.dump(config, f)
    try:
        p = subprocess.run([GW_BIN, "--config", path], capture_output=True, text=True, timeout=20)
    finally:
        os.unlink(path)
    return p


def test_config_unknown_key_is_rejected_naming_the_path(fake):
    p = run_gateway_expect_fail({"listen": "127.0.0.1:0", "limitz": {}})
    assert p.returncode != 0 and "limitz" in p.stderr
    p = run_gateway_expect_fail({"listen": "127.0.0.1:0", "limits": {"max_body": 1}})
    assert p.returncode != 0 and "limits" in p.stderr and "max_body" in p.stderr
    p = run_gateway_expect_fail({"listen": "127.0.0.1:0",
                                 "agentcore": dict(library_config(fake.url), bogus=1)})
    assert p.returncode != 0 and "bogus" in p.stderr


def test_without_keys_only_loopback_is_allowed():
    p = run_gateway_expect_fail({"listen": "0.0.0.0:0"})
    assert p.returncode != 0 and "loopback" in p.stderr
