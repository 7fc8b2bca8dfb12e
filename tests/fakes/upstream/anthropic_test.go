package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAnthropicValidation(t *testing.T) {
	_, ts := newTestServer(t)
	url := ts.URL + "/v1/messages"
	r := post(t, url, anthropicBody("x", nil), map[string]string{"anthropic-version": "2023-06-01"})
	assertEq(t, "no key", r.status, 401)
	assertEq(t, "no key kind", get(r.json(t), "error", "type"), any("authentication_error"))
	r = post(t, url, anthropicBody("x", nil), map[string]string{"x-api-key": "k"})
	assertEq(t, "no version", r.status, 400)
	assertEq(t, "no version kind", get(r.json(t), "error", "type"), any("invalid_request_error"))
	r = post(t, url, anthropicBody("x", nil), map[string]string{"Authorization": "Bearer k", "anthropic-version": "2023-06-01"})
	assertEq(t, "bearer ok", r.status, 200)

	b := anthropicBody("x", nil)
	delete(b, "max_tokens")
	r = post(t, url, b, anthropicHeaders())
	assertEq(t, "no max_tokens", r.status, 400)
	m := r.json(t)
	assertEq(t, "error envelope", m["type"], any("error"))
	assertEq(t, "kind", get(m, "error", "type"), any("invalid_request_error"))
	if !strings.Contains(get(m, "error", "message").(string), "max_tokens") {
		t.Fatalf("message: %v", m)
	}
	r = post(t, url, `{"model":`, anthropicHeaders())
	assertEq(t, "bad json", r.status, 400)
}

func TestAnthropicNonStreaming(t *testing.T) {
	_, ts := newTestServer(t)
	url := ts.URL + "/v1/messages"
	body := map[string]any{
		"model": "claude-fake", "max_tokens": 1024,
		"system": []any{map[string]any{"type": "text", "text": "Be brief."}},
		"messages": []any{
			map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hello"}, map[string]any{"type": "text", "text": "there"}}},
			map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": "toolu_x", "name": "f", "input": map[string]any{"a": 1}}}},
			map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": "toolu_x", "content": "42"}}},
		},
	}
	r := post(t, url, body, anthropicHeaders())
	assertEq(t, "status", r.status, 200)
	m := r.json(t)
	assertEq(t, "id", m["id"], any("msg_fake_1"))
	assertEq(t, "type", m["type"], any("message"))
	assertEq(t, "role", m["role"], any("assistant"))
	assertEq(t, "model", m["model"], any("claude-fake"))
	// The tool-result-only user turn is skipped: the echo is of "hello there".
	assertEq(t, "text", get(m, "content", 0, "text"), any("fake reply to: hello there"))
	assertEq(t, "block type", get(m, "content", 0, "type"), any("text"))
	assertEq(t, "stop_reason", m["stop_reason"], any("end_turn"))
	if v, ok := m["stop_sequence"]; !ok || v != nil {
		t.Fatalf("stop_sequence: %v", m)
	}
	// system 9 -> 3+3, "hello there" 11 -> 3+3, {"a":1} 7 -> 2+3, "42" -> 1+3.
	assertEq(t, "input_tokens", num(get(m, "usage", "input_tokens")), 21)
	assertEq(t, "output_tokens", num(get(m, "usage", "output_tokens")), 7)
	assertEq(t, "cache", num(get(m, "usage", "cache_read_input_tokens")), 0)
	if _, ok := get(m, "usage").(map[string]any)["cache_creation_input_tokens"]; !ok {
		t.Fatal("cache_creation_input_tokens missing")
	}

	// Tool use, with text before it.
	h := anthropicHeaders()
	h["X-Fake-Action"] = `{"content":"Let me check.","tool_calls":[{"name":"get_weather","arguments":{"city":"Paris"}}]}`
	m = post(t, url, anthropicBody("weather?", nil), h).json(t)
	assertEq(t, "stop_reason", m["stop_reason"], any("tool_use"))
	assertEq(t, "text first", get(m, "content", 0, "text"), any("Let me check."))
	assertEq(t, "tool type", get(m, "content", 1, "type"), any("tool_use"))
	assertEq(t, "tool id", get(m, "content", 1, "id"), any("toolu_2_0"))
	assertEq(t, "tool name", get(m, "content", 1, "name"), any("get_weather"))
	assertEq(t, "tool input", get(m, "content", 1, "input", "city"), any("Paris"))

	// max_tokens and stop sequences.
	m = post(t, url, anthropicBody("a long question", map[string]any{"max_tokens": 2}), anthropicHeaders()).json(t)
	assertEq(t, "truncated", get(m, "content", 0, "text"), any("fake rep"))
	assertEq(t, "max_tokens", m["stop_reason"], any("max_tokens"))
	m = post(t, url, anthropicBody("one STOP two", map[string]any{"stop_sequences": []string{"STOP"}}), anthropicHeaders()).json(t)
	assertEq(t, "stop text", get(m, "content", 0, "text"), any("fake reply to: one "))
	assertEq(t, "stop reason", m["stop_reason"], any("stop_sequence"))
	assertEq(t, "stop seq", m["stop_sequence"], any("STOP"))
}

func TestAnthropicStreaming(t *testing.T) {
	_, ts := newTestServer(t)
	h := anthropicHeaders()
	h["X-Fake-Action"] = `{"content":"Checking the weather now…","tool_calls":[{"name":"get_weather","arguments":{"city":"Paris","days":3}}]}`
	r := post(t, ts.URL+"/v1/messages", anthropicBody("weather?", map[string]any{"stream": true}), h)
	assertEq(t, "status", r.status, 200)
	assertEq(t, "content-type", r.header.Get("Content-Type"), "text/event-stream")
	evs := parseSSE(t, r.body)

	var names []string
	blocks := map[int]*strings.Builder{}
	types := map[int]string{}
	var stopReason any
	for _, e := range evs {
		d := decode(t, e.data)
		assertEq(t, "event/type match", e.event, d["type"].(string))
		if len(names) == 0 || names[len(names)-1] != e.event {
			names = append(names, e.event)
		}
		switch e.event {
		case "message_start":
			assertEq(t, "id", get(d, "message", "id"), any("msg_fake_1"))
			if c := get(d, "message", "content").([]any); len(c) != 0 {
				t.Fatal("message_start content not empty")
			}
			assertEq(t, "input_tokens", num(get(d, "message", "usage", "input_tokens")), 5)
		case "content_block_start":
			i := num(d["index"])
			blocks[i] = &strings.Builder{}
			types[i] = get(d, "content_block", "type").(string)
			if types[i] == "tool_use" {
				assertEq(t, "tool id", get(d, "content_block", "id"), any("toolu_1_0"))
				assertEq(t, "tool name", get(d, "content_block", "name"), any("get_weather"))
				if in := get(d, "content_block", "input").(map[string]any); len(in) != 0 {
					t.Fatal("tool_use start input must be {}")
				}
			} else {
				assertEq(t, "text start", get(d, "content_block", "text"), any(""))
			}
		case "content_block_delta":
			i := num(d["index"])
			var piece string
			switch get(d, "delta", "type") {
			case "text_delta":
				piece = get(d, "delta", "text").(string)
			case "input_json_delta":
				piece = get(d, "delta", "partial_json").(string)
			default:
				t.Fatalf("delta %v", d)
			}
			if len(piece) > 8 {
				t.Fatalf("piece too long %q", piece)
			}
			blocks[i].WriteString(piece)
		case "message_delta":
			stopReason = get(d, "delta", "stop_reason")
			assertEq(t, "output_tokens", num(get(d, "usage", "output_tokens")), (len("Checking the weather now…")+len("get_weather")+len(`{"city":"Paris","days":3}`)+3)/4)
		}
	}
	want := "message_start ping content_block_start content_block_delta content_block_stop content_block_start content_block_delta content_block_stop message_delta message_stop"
	assertEq(t, "event sequence", strings.Join(names, " "), want)
	assertEq(t, "text", blocks[0].String(), "Checking the weather now…")
	assertEq(t, "types", types[1], "tool_use")
	var in map[string]any
	if err := json.Unmarshal([]byte(blocks[1].String()), &in); err != nil || in["city"] != "Paris" {
		t.Fatalf("input json %q", blocks[1].String())
	}
	assertEq(t, "stop_reason", stopReason, any("tool_use"))
}
