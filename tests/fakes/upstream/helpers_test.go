package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newTestServer(t *testing.T) (*server, *httptest.Server) {
	t.Helper()
	s := newServer(nil)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error // error while reading the body
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// do sends a request; body may be a string, []byte or a value to encode.
func do(t *testing.T, method, url string, body any, headers map[string]string) result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		rd = bytes.NewReader(mustJSON(b))
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: rerr}
}

func post(t *testing.T, url string, body any, headers map[string]string) result {
	t.Helper()
	return do(t, http.MethodPost, url, body, headers)
}

type sseEv struct {
	event string
	data  string
}

// parseSSE splits an SSE body into events; it fails on a partial last event
// unless allowPartial.
func parseSSE(t *testing.T, body []byte) []sseEv {
	t.Helper()
	var evs []sseEv
	var cur sseEv
	var have bool
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if have {
				evs = append(evs, cur)
			}
			cur, have = sseEv{}, false
		case strings.HasPrefix(line, "event: "):
			cur.event, have = line[len("event: "):], true
		case strings.HasPrefix(line, "data: "):
			if cur.data != "" {
				cur.data += "\n"
			}
			cur.data += line[len("data: "):]
			have = true
		default:
			t.Fatalf("unexpected SSE line %q", line)
		}
	}
	if have {
		t.Fatalf("SSE body does not end with a blank line: %q", body)
	}
	return evs
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %v: %q", err, s)
	}
	return m
}

// get walks a decoded JSON value: get(m, "choices", 0, "message", "content").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func chatBody(model, text string, extra map[string]any) map[string]any {
	b := map[string]any{"model": model, "messages": []any{map[string]any{"role": "user", "content": text}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func anthropicHeaders() map[string]string {
	return map[string]string{"x-api-key": "k", "anthropic-version": "2023-06-01"}
}

func anthropicBody(text string, extra map[string]any) map[string]any {
	b := map[string]any{"model": "claude-fake", "max_tokens": 1024,
		"messages": []any{map[string]any{"role": "user", "content": text}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func geminiBody(text string, extra map[string]any) map[string]any {
	b := map[string]any{"contents": []any{map[string]any{"role": "user", "parts": []any{map[string]any{"text": text}}}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func assertEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
