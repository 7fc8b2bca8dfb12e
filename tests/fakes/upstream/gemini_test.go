package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestGeminiGenerate(t *testing.T) {
	_, ts := newTestServer(t)
	url := ts.URL + "/v1beta/models/gemini-2.5-flash-lite:generateContent"
	r := post(t, url, geminiBody("hi", nil), nil)
	assertEq(t, "no key", r.status, 403)
	assertEq(t, "no key status", get(r.json(t), "error", "status"), any("PERMISSION_DENIED"))

	body := geminiBody("hello there", map[string]any{
		"systemInstruction": map[string]any{"parts": []any{map[string]any{"text": "Be brief."}}},
		"generationConfig":  map[string]any{"temperature": 0.2, "maxOutputTokens": 100},
	})
	body["contents"] = append(body["contents"].([]any),
		map[string]any{"role": "model", "parts": []any{map[string]any{"functionCall": map[string]any{"name": "f", "args": map[string]any{"a": 1}}}}},
		map[string]any{"role": "user", "parts": []any{map[string]any{"functionResponse": map[string]any{"name": "f", "response": map[string]any{"r": 2}}}}},
	)
	r = post(t, url, body, map[string]string{"x-goog-api-key": "k"})
	assertEq(t, "status", r.status, 200)
	m := r.json(t)
	assertEq(t, "text", get(m, "candidates", 0, "content", "parts", 0, "text"), any("fake reply to: hello there"))
	assertEq(t, "role", get(m, "candidates", 0, "content", "role"), any("model"))
	assertEq(t, "finish", get(m, "candidates", 0, "finishReason"), any("STOP"))
	assertEq(t, "index", num(get(m, "candidates", 0, "index")), 0)
	assertEq(t, "modelVersion", m["modelVersion"], any("gemini-2.5-flash-lite"))
	// system 9 -> 6, "hello there" -> 6, {"a":1} -> 5, {"r":2} -> 5.
	assertEq(t, "prompt", num(get(m, "usageMetadata", "promptTokenCount")), 22)
	assertEq(t, "candidates", num(get(m, "usageMetadata", "candidatesTokenCount")), 7)
	assertEq(t, "total", num(get(m, "usageMetadata", "totalTokenCount")), 29)

	// Function call, key in the query.
	r = post(t, url+"?key=k", geminiBody(`[[fake:{"tool_calls":[{"name":"lookup","arguments":{"q":"x"}},{"name":"other"}]}]]`, nil), nil)
	m = r.json(t)
	assertEq(t, "fc name", get(m, "candidates", 0, "content", "parts", 0, "functionCall", "name"), any("lookup"))
	assertEq(t, "fc args", get(m, "candidates", 0, "content", "parts", 0, "functionCall", "args", "q"), any("x"))
	assertEq(t, "fc2 name", get(m, "candidates", 0, "content", "parts", 1, "functionCall", "name"), any("other"))
	assertEq(t, "fc finish", get(m, "candidates", 0, "finishReason"), any("STOP"))

	// maxOutputTokens, JSON mime type.
	m = post(t, url+"?key=k", geminiBody("a long question", map[string]any{"generationConfig": map[string]any{"maxOutputTokens": 1}}), nil).json(t)
	assertEq(t, "truncated", get(m, "candidates", 0, "content", "parts", 0, "text"), any("fake"))
	assertEq(t, "MAX_TOKENS", get(m, "candidates", 0, "finishReason"), any("MAX_TOKENS"))
	m = post(t, url+"?key=k", geminiBody("q", map[string]any{"generationConfig": map[string]any{"responseMimeType": "application/json"}}), nil).json(t)
	assertEq(t, "json", get(m, "candidates", 0, "content", "parts", 0, "text"), any(`{"reply":"fake reply to: q"}`))

	r = post(t, url+"?key=k", `{"contents":[]}`, nil)
	assertEq(t, "empty contents", r.status, 400)
	assertEq(t, "INVALID_ARGUMENT", get(r.json(t), "error", "status"), any("INVALID_ARGUMENT"))
	r = post(t, ts.URL+"/v1beta/models/g:unknownMethod?key=k", geminiBody("q", nil), nil)
	assertEq(t, "unknown method", r.status, 404)
	r = post(t, ts.URL+"/v1beta/models/g:countTokens?key=k", geminiBody("hello there", nil), nil)
	assertEq(t, "countTokens", num(r.json(t)["totalTokens"]), 6)
}

func TestGeminiStreaming(t *testing.T) {
	_, ts := newTestServer(t)
	url := ts.URL + "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=k"
	text := "grüße aus München ✓"
	r := post(t, url, geminiBody(text, nil), nil)
	assertEq(t, "status", r.status, 200)
	assertEq(t, "content-type", r.header.Get("Content-Type"), "text/event-stream")
	evs := parseSSE(t, r.body)
	var sb strings.Builder
	for i, e := range evs {
		if e.event != "" || e.data == "[DONE]" {
			t.Fatalf("unexpected event %v", e)
		}
		d := decode(t, e.data)
		piece := get(d, "candidates", 0, "content", "parts", 0, "text").(string)
		if len(piece) > 8 {
			t.Fatalf("piece too long %q", piece)
		}
		sb.WriteString(piece)
		lastEv := i == len(evs)-1
		if (get(d, "candidates", 0, "finishReason") != nil) != lastEv || (d["usageMetadata"] != nil) != lastEv {
			t.Fatalf("finishReason/usageMetadata only on the last event: %v", d)
		}
		if lastEv {
			assertEq(t, "finish", get(d, "candidates", 0, "finishReason"), any("STOP"))
			assertEq(t, "usage", num(get(d, "usageMetadata", "candidatesTokenCount")), (len("fake reply to: "+text)+3)/4)
		}
	}
	assertEq(t, "reassembled", sb.String(), "fake reply to: "+text)

	// Function calls arrive whole in one (last) event.
	r = post(t, url, geminiBody(`[[fake:{"tool_calls":[{"name":"lookup","arguments":{"q":"a long argument value"}}]}]]`, nil), nil)
	evs = parseSSE(t, r.body)
	assertEq(t, "one event", len(evs), 1)
	d := decode(t, evs[0].data)
	assertEq(t, "fc args", get(d, "candidates", 0, "content", "parts", 0, "functionCall", "args", "q"), any("a long argument value"))
	assertEq(t, "finish", get(d, "candidates", 0, "finishReason"), any("STOP"))

	// Without alt=sse: a JSON array of responses.
	r = post(t, ts.URL+"/v1beta/models/gemini-2.0-flash:streamGenerateContent?key=k", geminiBody("hi", nil), nil)
	var arr []map[string]any
	if err := json.Unmarshal(r.body, &arr); err != nil || len(arr) < 2 {
		t.Fatalf("array stream: %v %q", err, r.body)
	}
}

func TestGeminiEmbeddings(t *testing.T) {
	_, ts := newTestServer(t)
	r := post(t, ts.URL+"/v1beta/models/text-embedding-004:batchEmbedContents", map[string]any{"requests": []any{
		map[string]any{"model": "models/text-embedding-004", "content": map[string]any{"parts": []any{map[string]any{"text": "alpha"}}}},
		map[string]any{"model": "models/text-embedding-004", "content": map[string]any{"parts": []any{map[string]any{"text": "beta"}}}, "outputDimensionality": 4},
	}}, map[string]string{"x-goog-api-key": "k"})
	assertEq(t, "status", r.status, 200)
	m := r.json(t)
	v0 := floats(t, get(m, "embeddings", 0, "values"))
	want := embedVector("alpha", 8)
	for i := range want {
		assertEq(t, "same as OpenAI vector", v0[i], want[i])
	}
	assertEq(t, "dim", len(floats(t, get(m, "embeddings", 1, "values"))), 4)

	r = post(t, ts.URL+"/v1beta/models/text-embedding-004:embedContent?key=k",
		map[string]any{"content": map[string]any{"parts": []any{map[string]any{"text": "alpha"}}}}, nil)
	assertEq(t, "single", floats(t, get(r.json(t), "embedding", "values"))[0], want[0])
}
