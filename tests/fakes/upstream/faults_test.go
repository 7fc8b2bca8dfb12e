package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func content(t *testing.T, r result) string {
	t.Helper()
	s, _ := get(r.json(t), "choices", 0, "message", "content").(string)
	return s
}

func TestScriptQueueWithModelMatching(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/_fake/script", `[
		{"model":"fake-large","content":"for large"},
		{"content":"first any"},
		{"content":"second any","usage":{"prompt_tokens":1000},"finish_reason":"length"}]`, nil)
	assertEq(t, "script status", r.status, 200)
	assertEq(t, "queued", num(r.json(t)["queued"]), 3)

	url := ts.URL + "/v1/chat/completions"
	assertEq(t, "small 1", content(t, post(t, url, chatBody("fake-small", "q", nil), nil)), "first any")
	m := post(t, url, chatBody("fake-small", "q", nil), nil).json(t)
	assertEq(t, "small 2", get(m, "choices", 0, "message", "content"), any("second any"))
	assertEq(t, "usage merged", num(get(m, "usage", "prompt_tokens")), 1000)
	assertEq(t, "usage kept", num(get(m, "usage", "completion_tokens")), 3)
	assertEq(t, "finish override", get(m, "choices", 0, "finish_reason"), any("length"))
	assertEq(t, "small 3 (default)", content(t, post(t, url, chatBody("fake-small", "q", nil), nil)), "fake reply to: q")

	var q []any
	json.Unmarshal(do(t, "GET", ts.URL+"/_fake/script", nil, nil).body, &q)
	assertEq(t, "remaining", len(q), 1)

	// Any provider takes from the same queue.
	r = post(t, ts.URL+"/v1/messages", anthropicBody("q", map[string]any{"model": "fake-large"}), anthropicHeaders())
	assertEq(t, "anthropic large", get(r.json(t), "content", 0, "text"), any("for large"))
	assertEq(t, "large 2 (default)", content(t, post(t, url, chatBody("fake-large", "q", nil), nil)), "fake reply to: q")

	// A single object is accepted; bad actions are refused.
	assertEq(t, "single", post(t, ts.URL+"/_fake/script", `{"content":"x"}`, nil).status, 200)
	assertEq(t, "unknown key", post(t, ts.URL+"/_fake/script", `[{"contnet":"x"}]`, nil).status, 400)
	assertEq(t, "bad error kind", post(t, ts.URL+"/_fake/script", `[{"error":"nope"}]`, nil).status, 400)

	// Reset clears the queue and the counters.
	post(t, ts.URL+"/_fake/reset", "", nil)
	m = post(t, url, chatBody("m", "q", nil), nil).json(t)
	assertEq(t, "after reset", get(m, "choices", 0, "message", "content"), any("fake reply to: q"))
	assertEq(t, "id after reset", get(m, "id"), any("chatcmpl-fake-1"))
}

func TestDirectivesAndHeaderPrecedence(t *testing.T) {
	_, ts := newTestServer(t)
	url := ts.URL + "/v1/chat/completions"
	post(t, ts.URL+"/_fake/script", `[{"content":"scripted"}]`, nil)

	// A directive without content: echo with the directive stripped.
	r := post(t, url, chatBody("m", `hello [[fake:{"usage":{"total_tokens":99}}]] there`, nil), nil)
	assertEq(t, "stripped", content(t, r), "fake reply to: hello  there")
	assertEq(t, "directive usage", num(get(r.json(t), "usage", "total_tokens")), 99)

	// The header beats the directive; neither consumes the script.
	r = post(t, url, chatBody("m", `[[fake:{"content":"from directive"}]]`, nil), map[string]string{"X-Fake-Action": `{"content":"from header"}`})
	assertEq(t, "header first", content(t, r), "from header")
	r = post(t, url, chatBody("m", `[[fake:{"content":"from directive"}]]`, nil), nil)
	assertEq(t, "directive", content(t, r), "from directive")

	// Actions for another model are skipped.
	r = post(t, url, chatBody("m", `[[fake:{"model":"other","content":"no"}]]`, nil), map[string]string{"X-Fake-Action": `{"model":"other2","content":"no"}`})
	assertEq(t, "script after skipped", content(t, r), "scripted")

	// Only the last user message counts.
	r = post(t, url, map[string]any{"model": "m", "messages": []any{
		map[string]any{"role": "user", "content": `[[fake:{"content":"old"}]]`},
		map[string]any{"role": "assistant", "content": "ok"},
		map[string]any{"role": "user", "content": "new"},
	}}, nil)
	assertEq(t, "last user", content(t, r), "fake reply to: new")

	// Broken actions are reported, not ignored.
	r = post(t, url, chatBody("m", `[[fake:{"content":}]]`, nil), nil)
	assertEq(t, "bad directive", r.status, 400)
	r = post(t, url, chatBody("m", "x", nil), map[string]string{"X-Fake-Action": `{"delay":1}`})
	assertEq(t, "bad header", r.status, 400)
	if !strings.Contains(string(r.body), "X-Fake-Action") {
		t.Fatalf("error should name the header: %s", r.body)
	}
}

func TestFaultStatusAndRetryAfter(t *testing.T) {
	_, ts := newTestServer(t)
	act := map[string]string{"X-Fake-Action": `{"status":429,"retry_after":"3","retry_after_ms":"2500"}`}
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", nil), act)
	assertEq(t, "status", r.status, 429)
	assertEq(t, "Retry-After", r.header.Get("Retry-After"), "3")
	assertEq(t, "retry-after-ms", r.header.Get("retry-after-ms"), "2500")
	assertEq(t, "openai type", get(r.json(t), "error", "type"), any("rate_limit_error"))
	assertEq(t, "openai code", get(r.json(t), "error", "code"), any("rate_limit_exceeded"))

	r = post(t, ts.URL+"/v1/messages", anthropicBody("x", nil), map[string]string{
		"x-api-key": "k", "anthropic-version": "2023-06-01", "X-Fake-Action": `{"status":529,"message":"busy"}`})
	assertEq(t, "anthropic status", r.status, 529)
	m := r.json(t)
	assertEq(t, "anthropic type", m["type"], any("error"))
	assertEq(t, "anthropic kind", get(m, "error", "type"), any("overloaded_error"))
	assertEq(t, "anthropic message", get(m, "error", "message"), any("busy"))

	r = post(t, ts.URL+"/v1beta/models/gemini-2.0-flash:generateContent?key=k", geminiBody("x", nil), map[string]string{
		"X-Fake-Action": `{"status":503,"retry_after":7}`})
	assertEq(t, "gemini status", r.status, 503)
	assertEq(t, "gemini retry (number accepted)", r.header.Get("Retry-After"), "7")
	m = r.json(t)
	assertEq(t, "gemini code", num(get(m, "error", "code")), 503)
	assertEq(t, "gemini status name", get(m, "error", "status"), any("UNAVAILABLE"))

	// A status also applies to embeddings (header only).
	r = post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "e", "input": "x"}, map[string]string{"X-Fake-Action": `{"status":500}`})
	assertEq(t, "embeddings status", r.status, 500)
	assertEq(t, "embeddings type", get(r.json(t), "error", "type"), any("server_error"))
}

func TestFaultDelayAndCancel(t *testing.T) {
	_, ts := newTestServer(t)
	start := time.Now()
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m", `x [[fake:{"delay_ms":150}]]`, nil), nil)
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %v", el)
	}
	assertEq(t, "content", content(t, r), "fake reply to: x")

	// A client that gives up during the delay is counted as cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions",
		strings.NewReader(string(mustJSON(chatBody("m", "x", nil)))))
	req.Header.Set("X-Fake-Action", `{"delay_ms":2000}`)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("expected a timeout")
	}
	waitStats(t, ts.URL, func(st map[string]any) bool { return num(st["cancelled"]) == 1 && num(st["in_flight"]) == 0 })
}

func waitStats(t *testing.T, base string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var st map[string]any
	for i := 0; i < 200; i++ {
		st = do(t, "GET", base+"/_fake/stats", nil, nil).json(t)
		if ok(st) {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stats never matched: %v", st)
	return nil
}

func TestFaultCut(t *testing.T) {
	_, ts := newTestServer(t)
	// Streaming: exactly cut_after events, then the connection drops.
	body := chatBody("m", "a fairly long message to cut", map[string]any{"stream": true})
	r := post(t, ts.URL+"/v1/chat/completions", body, map[string]string{"X-Fake-Action": `{"cut_after":3}`})
	if r.err == nil {
		t.Fatal("expected a read error after the cut")
	}
	assertEq(t, "status", r.status, 200)
	evs := parseSSE(t, r.body)
	assertEq(t, "events before cut", len(evs), 3)
	for _, e := range evs {
		if e.data == "[DONE]" {
			t.Fatal("[DONE] after cut")
		}
	}

	// Non-streaming: full Content-Length announced, half sent.
	r = post(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", nil), map[string]string{"X-Fake-Action": `{"cut_after":0}`})
	if !errors.Is(r.err, io.ErrUnexpectedEOF) {
		t.Fatalf("expected unexpected EOF, got %v", r.err)
	}
	if json.Valid(r.body) || len(r.body) == 0 {
		t.Fatalf("half body expected: %q", r.body)
	}

	// cut_after 0 on a stream: headers only.
	r = post(t, ts.URL+"/v1/chat/completions", body, map[string]string{"X-Fake-Action": `{"cut_after":0}`})
	if r.err == nil || len(r.body) != 0 {
		t.Fatalf("expected an empty cut stream: %v %q", r.err, r.body)
	}

	// status + cut_after on a stream: a mid-stream error event, clean end.
	r = post(t, ts.URL+"/v1/chat/completions", body, map[string]string{"X-Fake-Action": `{"cut_after":2,"status":500,"message":"boom"}`})
	if r.err != nil {
		t.Fatal(r.err)
	}
	evs = parseSSE(t, r.body)
	assertEq(t, "events", len(evs), 3)
	assertEq(t, "mid-stream error", get(decode(t, evs[2].data), "error", "message"), any("boom"))

	r = post(t, ts.URL+"/v1/messages", anthropicBody("hello", map[string]any{"stream": true}), map[string]string{
		"x-api-key": "k", "anthropic-version": "2023-06-01", "X-Fake-Action": `{"cut_after":3,"status":529}`})
	evs = parseSSE(t, r.body)
	assertEq(t, "anthropic events", len(evs), 4)
	assertEq(t, "anthropic error event", evs[3].event, "error")
	assertEq(t, "anthropic error kind", get(decode(t, evs[3].data), "error", "type"), any("overloaded_error"))
}

func TestFaultMalformed(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", nil), map[string]string{"X-Fake-Action": `{"malformed":true}`})
	assertEq(t, "status", r.status, 200)
	if r.err != nil || json.Valid(r.body) || len(r.body) == 0 {
		t.Fatalf("want a complete but broken body: %v %q", r.err, r.body)
	}

	r = post(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", map[string]any{"stream": true}), map[string]string{"X-Fake-Action": `{"malformed":true}`})
	if r.err != nil {
		t.Fatal(r.err)
	}
	evs := parseSSE(t, r.body)
	assertEq(t, "events", len(evs), 2)
	if !json.Valid([]byte(evs[0].data)) || json.Valid([]byte(evs[1].data)) {
		t.Fatalf("first event valid, second broken expected: %q", r.body)
	}
}

func TestFaultTrickle(t *testing.T) {
	_, ts := newTestServer(t)
	start := time.Now()
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", nil), map[string]string{"X-Fake-Action": `{"trickle_ms":5}`})
	if r.err != nil || !json.Valid(r.body) {
		t.Fatalf("trickled body: %v", r.err)
	}
	if min := time.Duration(len(r.body)/16-1) * 5 * time.Millisecond; time.Since(start) < min {
		t.Fatalf("too fast: %v < %v", time.Since(start), min)
	}
	start = time.Now()
	chunks := streamChat(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", nil), map[string]string{"X-Fake-Action": `{"trickle_ms":20}`})
	if min := time.Duration(len(chunks)) * 20 * time.Millisecond; time.Since(start) < min {
		t.Fatalf("stream too fast: %v < %v", time.Since(start), min)
	}
}

func TestCancelledMidStream(t *testing.T) {
	_, ts := newTestServer(t)
	req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions",
		strings.NewReader(string(mustJSON(chatBody("m", "x", map[string]any{"stream": true})))))
	req.Header.Set("X-Fake-Action", `{"trickle_ms":100}`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q", line)
	}
	resp.Body.Close() // hang up after the first event
	waitStats(t, ts.URL, func(st map[string]any) bool { return num(st["cancelled"]) == 1 && num(st["in_flight"]) == 0 })
}

func TestContextWindow(t *testing.T) {
	_, ts := newTestServer(t)
	long := strings.Repeat("x", 400) // 100 tokens + 3
	url := ts.URL + "/v1/chat/completions"

	r := post(t, url, chatBody("fake-ctx100", "short", nil), nil)
	assertEq(t, "fits", r.status, 200)
	r = post(t, url, chatBody("fake-ctx100", "short", map[string]any{"max_tokens": 98}), nil)
	assertEq(t, "prompt+max_tokens over", r.status, 400)
	assertEq(t, "code", get(r.json(t), "error", "code"), any("context_length_exceeded"))
	if msg := get(r.json(t), "error", "message").(string); !strings.Contains(msg, "maximum context length is 100 tokens") {
		t.Fatalf("message %q", msg)
	}

	// Checked before the script queue: the scripted answer is kept for the fallback.
	post(t, ts.URL+"/_fake/script", `[{"content":"from big model"}]`, nil)
	r = post(t, url, chatBody("fake-ctx100", long, nil), nil)
	assertEq(t, "over", r.status, 400)
	assertEq(t, "fallback", content(t, post(t, url, chatBody("fake-large", long, nil), nil)), "from big model")

	r = post(t, ts.URL+"/v1/messages", anthropicBody(long, map[string]any{"model": "claude-ctx100", "max_tokens": 1}), anthropicHeaders())
	assertEq(t, "anthropic", r.status, 400)
	assertEq(t, "anthropic msg", get(r.json(t), "error", "message"), any("prompt is too long: 103 tokens > 100 maximum"))

	r = post(t, ts.URL+"/v1beta/models/gemini-ctx100:generateContent?key=k", geminiBody(long, nil), nil)
	assertEq(t, "gemini", r.status, 400)
	assertEq(t, "gemini msg", get(r.json(t), "error", "message"), any("The input token count (103) exceeds the maximum number of tokens allowed (100)."))
	assertEq(t, "gemini status", get(r.json(t), "error", "status"), any("INVALID_ARGUMENT"))

	// Explicit error kinds.
	for kind, want := range map[string]string{
		"context":        "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.",
		"vllm_context":   "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.",
		"ollama_context": "prompt too long; exceeded max context length by 100 tokens",
	} {
		r = post(t, url, chatBody("m", `[[fake:{"error":"`+kind+`"}]]`, nil), nil)
		assertEq(t, kind+" status", r.status, 400)
		assertEq(t, kind+" message", get(r.json(t), "error", "message"), any(want))
	}
	r = post(t, ts.URL+"/v1/messages", anthropicBody(`[[fake:{"error":"context"}]]`, nil), anthropicHeaders())
	assertEq(t, "anthropic context", get(r.json(t), "error", "message"), any("prompt is too long: 210000 tokens > 200000 maximum"))
	r = post(t, ts.URL+"/v1beta/models/g:generateContent?key=k", geminiBody(`[[fake:{"error":"context"}]]`, nil), nil)
	assertEq(t, "gemini context", get(r.json(t), "error", "message"), any("The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."))
}

func TestRecordingAndStats(t *testing.T) {
	_, ts := newTestServer(t)
	r := do(t, "GET", ts.URL+"/_fake/requests?last=1", nil, nil)
	assertEq(t, "none yet", r.status, 404)

	req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions?x=1&y=2", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer sk-test")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	post(t, ts.URL+"/v1/embeddings", "not json at all", nil)
	do(t, "GET", ts.URL+"/healthz", nil, nil) // not recorded

	var recs []map[string]any
	json.Unmarshal(do(t, "GET", ts.URL+"/_fake/requests", nil, nil).body, &recs)
	assertEq(t, "n records", len(recs), 2)
	r0 := recs[0]
	assertEq(t, "seq", num(r0["seq"]), 1)
	assertEq(t, "method", r0["method"], any("POST"))
	assertEq(t, "path", r0["path"], any("/v1/chat/completions"))
	assertEq(t, "query", r0["query"], any("x=1&y=2"))
	assertEq(t, "auth", get(r0, "headers", "authorization"), any("Bearer sk-test"))
	assertEq(t, "multi", get(r0, "headers", "x-multi"), any("a, b"))
	if get(r0, "headers", "host") == nil {
		t.Fatal("host header missing")
	}
	assertEq(t, "parsed body", get(r0, "body", "messages", 0, "content"), any("hi"))
	last := do(t, "GET", ts.URL+"/_fake/requests?last=1", nil, nil).json(t)
	assertEq(t, "last seq", num(last["seq"]), 2)
	assertEq(t, "raw body", last["body"], any("not json at all"))

	// in_flight / max_in_flight with concurrent slow requests.
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post(t, ts.URL+"/v1/chat/completions", chatBody("m", "x", nil), map[string]string{"X-Fake-Action": `{"delay_ms":200}`})
		}()
	}
	waitStats(t, ts.URL, func(st map[string]any) bool { return num(st["in_flight"]) == 3 })
	wg.Wait()
	st := do(t, "GET", ts.URL+"/_fake/stats", nil, nil).json(t)
	assertEq(t, "requests", num(st["requests"]), 5)
	assertEq(t, "max_in_flight", num(st["max_in_flight"]), 3)
	assertEq(t, "in_flight", num(st["in_flight"]), 0)
	assertEq(t, "cancelled", num(st["cancelled"]), 0)

	post(t, ts.URL+"/_fake/reset", "", nil)
	json.Unmarshal(do(t, "GET", ts.URL+"/_fake/requests", nil, nil).body, &recs)
	assertEq(t, "after reset", len(recs), 0)
	st = do(t, "GET", ts.URL+"/_fake/stats", nil, nil).json(t)
	assertEq(t, "requests after reset", num(st["requests"]), 0)
	assertEq(t, "healthz", string(do(t, "GET", ts.URL+"/healthz", nil, nil).body), "ok")
}
