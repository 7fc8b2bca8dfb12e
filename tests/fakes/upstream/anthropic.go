package main

// Anthropic Messages API: POST /v1/messages (streaming and not).

import (
	"encoding/json"
	"fmt"
	"strings"
)

func anthropicErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

func anthropicErrorJSON(status int, message string) []byte {
	if message == "" {
		message = defaultMessage(status)
	}
	return mustJSON(map[string]any{"type": "error", "error": map[string]string{
		"type": anthropicErrorType(status), "message": message}})
}

var anthropicProvider = &provider{
	name:      "anthropic",
	errorBody: anthropicErrorJSON,
	contextError: func(a *Action) (int, []byte) {
		msg := "prompt is too long: 210000 tokens > 200000 maximum"
		switch {
		case a.Message != "":
			msg = a.Message
		case a.ctxLimit > 0 && a.ctxPrompt > a.ctxLimit:
			msg = fmt.Sprintf("prompt is too long: %d tokens > %d maximum", a.ctxPrompt, a.ctxLimit)
		case a.ctxLimit > 0:
			msg = fmt.Sprintf("input length and `max_tokens` exceed context limit: %d + %d > %d, decrease input length or `max_tokens` and try again",
				a.ctxPrompt, a.ctxCompletion, a.ctxLimit)
		}
		return 400, anthropicErrorJSON(400, msg)
	},
	finish: func(g string) string {
		switch g {
		case "stop":
			return "end_turn"
		case "length":
			return "max_tokens"
		case "tool_calls":
			return "tool_use"
		case "content_filter":
			return "refusal"
		}
		return g
	},
	streamError: func(status int, message string) []byte {
		return sseEvent("error", anthropicErrorJSON(status, message))
	},
}

type anBlockIn struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type anMessageIn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type anRequest struct {
	Model         string          `json:"model"`
	System        json.RawMessage `json:"system"`
	Messages      []anMessageIn   `json:"messages"`
	MaxTokens     *int            `json:"max_tokens"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
}

// anthropicBlocks decodes content that is a string or an array of blocks.
func anthropicBlocks(raw json.RawMessage) ([]anBlockIn, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []anBlockIn{{Type: "text", Text: s}}, nil
	}
	var blocks []anBlockIn
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fmt.Errorf("content must be a string or an array of content blocks")
	}
	return blocks, nil
}

// anthropicText joins the text blocks of content with a space.
func anthropicText(blocks []anBlockIn) (string, bool) {
	var texts []string
	for _, b := range blocks {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, " "), len(texts) > 0
}

type anContentOut struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type anUsage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

type anMessageOut struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Role         string          `json:"role"`
	Model        string          `json:"model"`
	Content      []anContentOut  `json:"content"`
	StopReason   *string         `json:"stop_reason"`
	StopSequence *string         `json:"stop_sequence"`
	Usage        json.RawMessage `json:"usage"`
}

func (s *server) anthropicMessages(c *reqCtx) {
	p := anthropicProvider
	bad := func(status int, msg string) { writeJSON(c.w, status, anthropicErrorJSON(status, msg)) }
	h := c.r.Header
	if h.Get("x-api-key") == "" && !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
		bad(401, "x-api-key header is required")
		return
	}
	if h.Get("anthropic-version") == "" {
		bad(400, "anthropic-version: header is required")
		return
	}
	var req anRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		bad(400, "invalid JSON body: "+err.Error())
		return
	}
	switch {
	case req.Model == "":
		bad(400, "model: Field required")
		return
	case req.MaxTokens == nil:
		bad(400, "max_tokens: Field required")
		return
	case *req.MaxTokens < 1:
		bad(400, "max_tokens: must be greater than or equal to 1")
		return
	case len(req.Messages) == 0:
		bad(400, "messages: at least one message is required")
		return
	}
	c.stream = req.Stream

	in := &chatInput{model: req.Model, maxTokens: *req.MaxTokens, stops: req.StopSequences}
	if len(req.System) > 0 && string(req.System) != "null" {
		blocks, err := anthropicBlocks(req.System)
		if err != nil {
			bad(400, "system: "+err.Error())
			return
		}
		t, _ := anthropicText(blocks)
		in.promptTokens += tokens(len(t)) + 3
	}
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			bad(400, fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i))
			return
		}
		blocks, err := anthropicBlocks(m.Content)
		if err != nil {
			bad(400, fmt.Sprintf("messages.%d.content: %v", i, err))
			return
		}
		text, hasText := anthropicText(blocks)
		size := len(text)
		for _, b := range blocks {
			switch b.Type {
			case "tool_use":
				size += len(compactJSON(b.Input))
			case "tool_result":
				rb, _ := anthropicBlocks(b.Content)
				t, _ := anthropicText(rb)
				size += len(t)
			}
		}
		in.promptTokens += tokens(size) + 3
		// A user turn holding only tool results is not "the user's message".
		if m.Role == "user" && hasText {
			in.userText = text
		}
	}

	rp, act := c.decide(in, p)
	if rp == nil {
		return
	}
	id := fmt.Sprintf("msg_fake_%d", rp.n)
	stop := p.finish(rp.finish)
	var stopSeq *string
	if rp.finish == "stop_sequence" {
		stopSeq = &rp.stopSeq
	}
	usage := mergeUsage(anUsage{InputTokens: rp.promptTokens, OutputTokens: rp.completionTokens}, rp.usageExtra)
	var content []anContentOut
	if rp.hasText {
		t := rp.text
		content = append(content, anContentOut{Type: "text", Text: &t})
	}
	for i, tc := range rp.calls {
		content = append(content, anContentOut{Type: "tool_use", ID: fmt.Sprintf("toolu_%d_%d", rp.n, i), Name: tc.name, Input: tc.input})
	}

	if !req.Stream {
		body := mustJSON(anMessageOut{ID: id, Type: "message", Role: "assistant", Model: req.Model,
			Content: content, StopReason: &stop, StopSequence: stopSeq, Usage: usage})
		c.writeBody(act, 200, "application/json", body)
		return
	}

	es := c.startStream(act, p, "text/event-stream")
	ev := func(name string, v any) bool { return es.send(sseEvent(name, mustJSON(v))) }
	startUsage := mergeUsage(anUsage{InputTokens: rp.promptTokens}, nil)
	if !ev("message_start", map[string]any{"type": "message_start", "message": anMessageOut{
		ID: id, Type: "message", Role: "assistant", Model: req.Model, Content: []anContentOut{}, Usage: startUsage}}) {
		return
	}
	if !ev("ping", map[string]string{"type": "ping"}) {
		return
	}
	for idx, blk := range content {
		start := blk
		var pieces []string
		var delta func(string) any
		if blk.Type == "text" {
			empty := ""
			start.Text = &empty
			pieces = splitPieces(*blk.Text, 8)
			delta = func(s string) any { return map[string]string{"type": "text_delta", "text": s} }
		} else {
			start.Input = json.RawMessage("{}")
			pieces = splitPieces(string(blk.Input), 8)
			delta = func(s string) any { return map[string]string{"type": "input_json_delta", "partial_json": s} }
		}
		if !ev("content_block_start", map[string]any{"type": "content_block_start", "index": idx, "content_block": start}) {
			return
		}
		for _, piece := range pieces {
			if !ev("content_block_delta", map[string]any{"type": "content_block_delta", "index": idx, "delta": delta(piece)}) {
				return
			}
		}
		if !ev("content_block_stop", map[string]any{"type": "content_block_stop", "index": idx}) {
			return
		}
	}
	outUsage := mergeUsage(map[string]int{"output_tokens": rp.completionTokens}, rp.usageExtra)
	if !ev("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]*string{"stop_reason": &stop, "stop_sequence": stopSeq}, "usage": outUsage}) {
		return
	}
	ev("message_stop", map[string]string{"type": "message_stop"})
}
