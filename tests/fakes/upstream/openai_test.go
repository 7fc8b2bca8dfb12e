package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOpenAINonStreaming(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/v1/chat/completions", map[string]any{
		"model": "fake-model",
		"messages": []any{
			map[string]any{"role": "system", "content": "Be brief."},
			map[string]any{"role": "user", "content": "hello world"},
		},
	}, nil)
	assertEq(t, "status", r.status, 200)
	assertEq(t, "content-type", r.header.Get("Content-Type"), "application/json")
	m := r.json(t)
	assertEq(t, "id", get(m, "id"), any("chatcmpl-fake-1"))
	assertEq(t, "object", get(m, "object"), any("chat.completion"))
	assertEq(t, "created", num(get(m, "created")), 1700000000)
	assertEq(t, "model", get(m, "model"), any("fake-model"))
	assertEq(t, "fingerprint", get(m, "system_fingerprint"), any("fake"))
	assertEq(t, "role", get(m, "choices", 0, "message", "role"), any("assistant"))
	assertEq(t, "content", get(m, "choices", 0, "message", "content"), any("fake reply to: hello world"))
	assertEq(t, "finish", get(m, "choices", 0, "finish_reason"), any("stop"))
	if msg := get(m, "choices", 0, "message").(map[string]any); msg["refusal"] != nil || len(msg) != 3 {
		t.Fatalf("message: %v", msg)
	}
	// "Be brief." 9 bytes -> 3+3; "hello world" 11 -> 3+3; reply 26 bytes -> 7.
	assertEq(t, "prompt_tokens", num(get(m, "usage", "prompt_tokens")), 12)
	assertEq(t, "completion_tokens", num(get(m, "usage", "completion_tokens")), 7)
	assertEq(t, "total_tokens", num(get(m, "usage", "total_tokens")), 19)

	// Second request: next id; array content is joined with a space.
	r = post(t, ts.URL+"/v1/chat/completions", map[string]any{
		"model": "fake-model",
		"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "text", "text": "look"},
			map[string]any{"type": "image_url", "image_url": map[string]any{"url": "data:image/png;base64,AAAA"}},
			map[string]any{"type": "text", "text": "here"},
		}}},
	}, nil)
	m = r.json(t)
	assertEq(t, "id", get(m, "id"), any("chatcmpl-fake-2"))
	assertEq(t, "content", get(m, "choices", 0, "message", "content"), any("fake reply to: look here"))
}

func TestOpenAIRequestErrors(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/v1/chat/completions", "{not json", nil)
	assertEq(t, "status", r.status, 400)
	assertEq(t, "type", get(r.json(t), "error", "type"), any("invalid_request_error"))
	r = post(t, ts.URL+"/v1/chat/completions", map[string]any{"messages": []any{}}, nil)
	assertEq(t, "status", r.status, 400)
	r = post(t, ts.URL+"/v1/chat/completions", map[string]any{"model": "m", "messages": []any{}}, nil)
	assertEq(t, "status", r.status, 400)
	r = do(t, "GET", ts.URL+"/v1/chat/completions", nil, nil)
	assertEq(t, "status", r.status, 405)
	r = post(t, ts.URL+"/nope", "{}", nil)
	assertEq(t, "status", r.status, 404)
	e := get(r.json(t), "error").(map[string]any)
	if _, ok := e["param"]; !ok || e["message"] == "" {
		t.Fatalf("error shape: %v", e)
	}
}

// streamChat posts a streaming request and returns the decoded chunks
// (without [DONE]) after checking the framing.
func streamChat(t *testing.T, url string, body map[string]any, headers map[string]string) []map[string]any {
	t.Helper()
	body["stream"] = true
	r := post(t, url, body, headers)
	if r.err != nil {
		t.Fatalf("read: %v", r.err)
	}
	assertEq(t, "status", r.status, 200)
	assertEq(t, "content-type", r.header.Get("Content-Type"), "text/event-stream")
	evs := parseSSE(t, r.body)
	if len(evs) < 3 || evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", r.body)
	}
	var out []map[string]any
	for _, e := range evs[:len(evs)-1] {
		if e.event != "" {
			t.Fatalf("unexpected event name %q", e.event)
		}
		out = append(out, decode(t, e.data))
	}
	return out
}

func TestOpenAIStreaming(t *testing.T) {
	_, ts := newTestServer(t)
	text := "héllo wörld — ünïcödé ✓ 你好世界"
	chunks := streamChat(t, ts.URL+"/v1/chat/completions", chatBody("fake-model", text,
		map[string]any{"stream_options": map[string]any{"include_usage": true}}), nil)

	first := chunks[0]
	assertEq(t, "object", get(first, "object"), any("chat.completion.chunk"))
	assertEq(t, "role", get(first, "choices", 0, "delta", "role"), any("assistant"))
	assertEq(t, "first content", get(first, "choices", 0, "delta", "content"), any(""))

	var sb strings.Builder
	var finish any
	for i, c := range chunks[1 : len(chunks)-1] {
		assertEq(t, "id", get(c, "id"), any("chatcmpl-fake-1"))
		if _, ok := c["usage"]; !ok || c["usage"] != nil {
			t.Fatalf("chunk %d: usage should be null with include_usage: %v", i, c)
		}
		if fr := get(c, "choices", 0, "finish_reason"); fr != nil {
			finish = fr
			if d := get(c, "choices", 0, "delta").(map[string]any); len(d) != 0 {
				t.Fatalf("finish chunk delta not empty: %v", d)
			}
			continue
		}
		piece := get(c, "choices", 0, "delta", "content").(string)
		if len(piece) == 0 || len(piece) > 8 || !utf8.ValidString(piece) {
			t.Fatalf("bad piece %q", piece)
		}
		sb.WriteString(piece)
	}
	assertEq(t, "reassembled", sb.String(), "fake reply to: "+text)
	assertEq(t, "finish", finish, any("stop"))
	last := chunks[len(chunks)-1]
	if ch := get(last, "choices").([]any); len(ch) != 0 {
		t.Fatalf("usage chunk has choices: %v", ch)
	}
	assertEq(t, "completion_tokens", num(get(last, "usage", "completion_tokens")), (len("fake reply to: "+text)+3)/4)

	// Without include_usage: no usage chunk, no usage keys.
	chunks = streamChat(t, ts.URL+"/v1/chat/completions", chatBody("fake-model", "hi", nil), nil)
	for _, c := range chunks {
		if _, ok := c["usage"]; ok {
			t.Fatalf("unexpected usage: %v", c)
		}
	}
	assertEq(t, "last finish", get(chunks[len(chunks)-1], "choices", 0, "finish_reason"), any("stop"))
}

func TestOpenAIToolCalls(t *testing.T) {
	_, ts := newTestServer(t)
	act := `{"tool_calls":[{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}},{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}]}`
	h := map[string]string{"X-Fake-Action": act}
	body := map[string]any{
		"model": "fake-model",
		"messages": []any{
			map[string]any{"role": "user", "content": "weather?"},
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"id": "call_0", "type": "function", "function": map[string]any{"name": "x", "arguments": "{\"a\":1}"}}}},
			map[string]any{"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
		},
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{"name": "get_weather"}}},
	}
	r := post(t, ts.URL+"/v1/chat/completions", body, h)
	m := r.json(t)
	msg := get(m, "choices", 0, "message").(map[string]any)
	if v, ok := msg["content"]; !ok || v != nil {
		t.Fatalf("content should be null: %v", msg)
	}
	assertEq(t, "finish", get(m, "choices", 0, "finish_reason"), any("tool_calls"))
	assertEq(t, "id0", get(msg, "tool_calls", 0, "id"), any("call_1_0"))
	assertEq(t, "id1", get(msg, "tool_calls", 1, "id"), any("call_1_1"))
	assertEq(t, "type", get(msg, "tool_calls", 0, "type"), any("function"))
	assertEq(t, "name", get(msg, "tool_calls", 0, "function", "name"), any("get_weather"))
	assertEq(t, "args0", get(msg, "tool_calls", 0, "function", "arguments"), any(`{"city":"Paris","unit":"celsius"}`))
	assertEq(t, "args1", get(msg, "tool_calls", 1, "function", "arguments"), any(`{"tz":"CET"}`))
	// prompt: "weather?" 8 -> 2+3; assistant args 7 bytes -> 2+3; tool "sunny" -> 2+3.
	assertEq(t, "prompt_tokens", num(get(m, "usage", "prompt_tokens")), 15)
	// completion: get_weather(11)+32 + get_time(8)+12 = 63 -> 16.
	assertEq(t, "completion_tokens", num(get(m, "usage", "completion_tokens")), 16)

	// Streamed: reassemble per index.
	chunks := streamChat(t, ts.URL+"/v1/chat/completions", body, h)
	type call struct{ id, name, args string }
	calls := map[int]*call{}
	var finish any
	for _, c := range chunks[1:] {
		if fr := get(c, "choices", 0, "finish_reason"); fr != nil {
			finish = fr
			continue
		}
		tcs := get(c, "choices", 0, "delta", "tool_calls").([]any)
		if len(tcs) != 1 {
			t.Fatalf("one tool call per delta expected: %v", tcs)
		}
		tc := tcs[0].(map[string]any)
		i := num(tc["index"])
		if calls[i] == nil {
			if tc["id"] == nil || get(tc, "function", "name") == nil || get(tc, "function", "arguments") != "" {
				t.Fatalf("first delta of call %d: %v", i, tc)
			}
			calls[i] = &call{id: tc["id"].(string), name: get(tc, "function", "name").(string)}
			continue
		}
		if _, ok := tc["id"]; ok {
			t.Fatalf("fragment with id: %v", tc)
		}
		frag := get(tc, "function", "arguments").(string)
		if len(frag) > 8 {
			t.Fatalf("fragment too long: %q", frag)
		}
		calls[i].args += frag
	}
	assertEq(t, "finish", finish, any("tool_calls"))
	assertEq(t, "n calls", len(calls), 2)
	assertEq(t, "stream id", calls[0].id, "call_2_0")
	assertEq(t, "stream name", calls[1].name, "get_time")
	assertEq(t, "stream args0", calls[0].args, `{"city":"Paris","unit":"celsius"}`)
	assertEq(t, "stream args1", calls[1].args, `{"tz":"CET"}`)
}

func TestOpenAIJSONModeAzureAndLimits(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/v1/chat/completions", chatBody("m", `say "hi"`,
		map[string]any{"response_format": map[string]any{"type": "json_object"}}), nil)
	content := get(r.json(t), "choices", 0, "message", "content").(string)
	var obj map[string]string
	if err := json.Unmarshal([]byte(content), &obj); err != nil || obj["reply"] != `fake reply to: say "hi"` {
		t.Fatalf("json mode content %q", content)
	}

	r = post(t, ts.URL+"/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21", chatBody("ignored", "hi", nil), nil)
	assertEq(t, "azure model", get(r.json(t), "model"), any("my-gpt4o"))

	// max_tokens truncates (4 bytes per token) and reports "length".
	r = post(t, ts.URL+"/v1/chat/completions", chatBody("m", "a long question indeed", map[string]any{"max_tokens": 3}), nil)
	m := r.json(t)
	assertEq(t, "truncated", get(m, "choices", 0, "message", "content"), any("fake reply t"))
	assertEq(t, "finish", get(m, "choices", 0, "finish_reason"), any("length"))
	assertEq(t, "completion_tokens", num(get(m, "usage", "completion_tokens")), 3)

	// Stop sequences cut before the match and report "stop".
	r = post(t, ts.URL+"/v1/chat/completions", chatBody("m", "one two three", map[string]any{"stop": []string{"three", "two"}}), nil)
	m = r.json(t)
	assertEq(t, "stopped", get(m, "choices", 0, "message", "content"), any("fake reply to: one "))
	assertEq(t, "finish", get(m, "choices", 0, "finish_reason"), any("stop"))
}

func TestModels(t *testing.T) {
	_, ts := newTestServer(t)
	r := do(t, "GET", ts.URL+"/v1/models", nil, nil)
	m := r.json(t)
	assertEq(t, "object", m["object"], any("list"))
	var ids []string
	for _, d := range m["data"].([]any) {
		dm := d.(map[string]any)
		ids = append(ids, dm["id"].(string))
		assertEq(t, "owned_by", dm["owned_by"], any("fake"))
		assertEq(t, "created", num(dm["created"]), 1700000000)
	}
	assertEq(t, "ids", strings.Join(ids, ","), "fake-model,fake-small,fake-large")
}

func floats(t *testing.T, v any) []float32 {
	t.Helper()
	a := v.([]any)
	out := make([]float32, len(a))
	for i, x := range a {
		out[i] = float32(x.(float64))
	}
	return out
}

func TestEmbeddings(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "emb", "input": []string{"alpha", "beta", "alpha"}}, nil)
	m := r.json(t)
	assertEq(t, "object", m["object"], any("list"))
	data := m["data"].([]any)
	assertEq(t, "n", len(data), 3)
	v0, v1, v2 := floats(t, get(data[0], "embedding")), floats(t, get(data[1], "embedding")), floats(t, get(data[2], "embedding"))
	assertEq(t, "dim", len(v0), 8)
	assertEq(t, "index", num(get(data[1], "index")), 1)
	assertEq(t, "item object", get(data[1], "object"), any("embedding"))
	var norm float64
	same := true
	for i := range v0 {
		norm += float64(v0[i]) * float64(v0[i])
		if v0[i] != v2[i] {
			t.Fatalf("same text, different vectors")
		}
		if v0[i] != v1[i] {
			same = false
		}
		if v0[i] < -1 || v0[i] > 1 {
			t.Fatalf("out of range")
		}
	}
	if same || math.Abs(norm-1) > 1e-5 {
		t.Fatalf("vectors: same=%v norm=%v", same, norm)
	}
	assertEq(t, "usage", num(get(m, "usage", "prompt_tokens")), 2+1+2)
	want := embedVector("alpha", 8)
	for i := range want {
		assertEq(t, "vector matches embedVector", v0[i], want[i])
	}

	// Single string, dimensions, base64.
	r = post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "emb", "input": "alpha", "dimensions": 16}, nil)
	f16 := floats(t, get(r.json(t), "data", 0, "embedding"))
	assertEq(t, "dim16", len(f16), 16)
	r = post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "emb", "input": "alpha", "dimensions": 16, "encoding_format": "base64"}, nil)
	raw, err := base64.StdEncoding.DecodeString(get(r.json(t), "data", 0, "embedding").(string))
	if err != nil || len(raw) != 64 {
		t.Fatalf("base64: %v len %d", err, len(raw))
	}
	for i := range f16 {
		assertEq(t, "base64 value", math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])), f16[i])
	}

	// Token arrays are the text of their decimal values.
	r = post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "emb", "input": []any{[]int{1, 2, 3}, "1 2 3"}}, nil)
	data = r.json(t)["data"].([]any)
	a, b := floats(t, get(data[0], "embedding")), floats(t, get(data[1], "embedding"))
	for i := range a {
		assertEq(t, "token array", a[i], b[i])
	}
	r = post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "emb", "input": []int{1, 2, 3}}, nil)
	assertEq(t, "token input", len(r.json(t)["data"].([]any)), 1)

	r = post(t, ts.URL+"/v1/embeddings", map[string]any{"model": "emb", "input": []any{}}, nil)
	assertEq(t, "empty input", r.status, 400)

	// Ollama: same vectors.
	r = post(t, ts.URL+"/api/embed", map[string]any{"model": "nomic", "input": []string{"alpha"}}, nil)
	m = r.json(t)
	assertEq(t, "ollama model", m["model"], any("nomic"))
	ov := floats(t, get(m, "embeddings", 0))
	for i := range ov {
		assertEq(t, "ollama vector", ov[i], v0[i])
	}
	r = post(t, ts.URL+"/api/embed", map[string]any{"model": "nomic", "input": "alpha"}, nil)
	assertEq(t, "ollama string input", len(get(r.json(t), "embeddings").([]any)), 1)
}
