package main

// Actions: how a test tells the fake what to answer (header, directive,
// script queue, context window) and the fault machinery (status, delay,
// trickle, cut, malformed) shared by every provider.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// flexString accepts a JSON string or number (retry_after: "2" or 2).
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("must be a string or a number")
	}
	*f = flexString(n.String())
	return nil
}

// ToolCallSpec is one tool call an action asks for.
type ToolCallSpec struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments,omitempty"` // object or JSON-in-a-string
}

// argsString is the arguments as OpenAI sends them (a JSON text).
func (t ToolCallSpec) argsString() string {
	var s string
	if json.Unmarshal(t.Arguments, &s) == nil {
		return s
	}
	return compactJSON(t.Arguments)
}

// argsObject is the arguments as an object (Anthropic input, Gemini args);
// a string that does not hold a JSON object gives {}.
func (t ToolCallSpec) argsObject() json.RawMessage {
	txt := t.argsString()
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(txt), &m) != nil || m == nil {
		return json.RawMessage("{}")
	}
	return json.RawMessage(compactJSON(json.RawMessage(txt)))
}

// Action says how to answer one request (README.md lists the keys).
type Action struct {
	Content      *string                    `json:"content,omitempty"`
	ToolCalls    []ToolCallSpec             `json:"tool_calls,omitempty"`
	Status       int                        `json:"status,omitempty"`
	Message      string                     `json:"message,omitempty"`
	RetryAfter   flexString                 `json:"retry_after,omitempty"`
	RetryAfterMs flexString                 `json:"retry_after_ms,omitempty"`
	Error        string                     `json:"error,omitempty"`
	DelayMs      int                        `json:"delay_ms,omitempty"`
	TrickleMs    int                        `json:"trickle_ms,omitempty"`
	CutAfter     *int                       `json:"cut_after,omitempty"`
	Malformed    bool                       `json:"malformed,omitempty"`
	Usage        map[string]json.RawMessage `json:"usage,omitempty"`
	FinishReason string                     `json:"finish_reason,omitempty"`
	Model        string                     `json:"model,omitempty"`

	// Set for the automatic context-window error (model "...-ctx<N>").
	ctxLimit, ctxPrompt, ctxCompletion int
}

func parseAction(b []byte) (*Action, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a Action
	if err := dec.Decode(&a); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after action")
	}
	return &a, a.validate()
}

func (a *Action) validate() error {
	switch a.Error {
	case "", "context", "vllm_context", "ollama_context":
	default:
		return fmt.Errorf("unknown error kind %q", a.Error)
	}
	if a.Status != 0 && (a.Status < 100 || a.Status > 999) {
		return fmt.Errorf("bad status %d", a.Status)
	}
	if a.DelayMs < 0 || a.TrickleMs < 0 || (a.CutAfter != nil && *a.CutAfter < 0) {
		return errors.New("negative delay_ms, trickle_ms or cut_after")
	}
	for _, t := range a.ToolCalls {
		if t.Name == "" {
			return errors.New("tool call without name")
		}
	}
	return nil
}

// parseActions accepts a JSON array of actions or a single action object.
func parseActions(b []byte) ([]Action, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		a, err := parseAction(b)
		if err != nil {
			return nil, err
		}
		return []Action{*a}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, err
	}
	out := make([]Action, 0, len(raws))
	for i, r := range raws {
		a, err := parseAction(r)
		if err != nil {
			return nil, fmt.Errorf("action %d: %v", i, err)
		}
		out = append(out, *a)
	}
	return out, nil
}

const directivePrefix = "[[fake:"

// extractDirective finds "[[fake:{json}]]" directives in text. It returns
// the first one's action, and the text with every directive removed (and
// trimmed) when at least one was found.
func extractDirective(text string) (act *Action, stripped string, err error) {
	idx := strings.Index(text, directivePrefix)
	if idx < 0 {
		return nil, text, nil
	}
	var sb strings.Builder
	rest := text
	for {
		idx = strings.Index(rest, directivePrefix)
		if idx < 0 {
			sb.WriteString(rest)
			break
		}
		sb.WriteString(rest[:idx])
		body := rest[idx+len(directivePrefix):]
		dec := json.NewDecoder(strings.NewReader(body))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, "", fmt.Errorf("bad [[fake:...]] directive: %v", err)
		}
		after := strings.TrimLeft(body[dec.InputOffset():], " \t")
		if !strings.HasPrefix(after, "]]") {
			return nil, "", errors.New("bad [[fake:...]] directive: missing ]]")
		}
		if act == nil {
			if act, err = parseAction(raw); err != nil {
				return nil, "", fmt.Errorf("bad [[fake:...]] directive: %v", err)
			}
		}
		rest = after[2:]
	}
	return act, strings.TrimSpace(sb.String()), nil
}

// ctxWindow returns N for a model named "...-ctx<N>", else 0.
func ctxWindow(model string) int {
	i := strings.LastIndex(model, "-ctx")
	if i < 0 {
		return 0
	}
	n, err := strconv.Atoi(model[i+4:])
	if err != nil || n <= 0 || strings.HasPrefix(model[i+4:], "+") {
		return 0
	}
	return n
}

// ---- deciding the answer ---------------------------------------------------

// provider holds what differs between wire formats for errors and finish
// reasons.
type provider struct {
	name string
	// errorBody is the JSON error document for status.
	errorBody func(status int, message string) []byte
	// contextError is the status and body of a context-length error.
	contextError func(a *Action) (int, []byte)
	// finish maps a generic finish reason ("stop", "length", "tool_calls",
	// "stop_sequence", or a finish_reason override) to the wire value.
	finish func(generic string) string
	// streamError is the complete stream frame of a mid-stream error.
	streamError func(status int, message string) []byte
}

// chatInput is what the provider handler extracted from the request.
type chatInput struct {
	model        string
	userText     string // text of the last user message, directives included
	promptTokens int
	maxTokens    int // 0 = not given
	stops        []string
	jsonMode     bool
}

type toolCall struct {
	name  string
	args  string          // JSON text
	input json.RawMessage // JSON object
}

// reply is the decided answer to a chat request.
type reply struct {
	n                int64 // chat request ordinal since reset
	text             string
	hasText          bool // false: tool calls only (OpenAI content null)
	calls            []toolCall
	finish           string // generic reason or override (see provider.finish)
	stopSeq          string // the matched stop sequence, if any
	promptTokens     int
	completionTokens int
	usageExtra       map[string]json.RawMessage
}

// resolveAction applies, in order: the X-Fake-Action header, a directive in
// the last user message, the model's context window, the script queue.
// It also returns the user text with directives stripped.
func (c *reqCtx) resolveAction(in *chatInput, useScript bool) (*Action, string, error) {
	userText := in.userText
	var hdrAct *Action
	if h := c.r.Header.Get("X-Fake-Action"); h != "" {
		a, err := parseAction([]byte(h))
		if err != nil {
			return nil, "", fmt.Errorf("bad X-Fake-Action header: %v", err)
		}
		if a.Model == "" || a.Model == in.model {
			hdrAct = a
		}
	}
	dirAct, stripped, err := extractDirective(userText)
	if err != nil {
		return nil, "", err
	}
	userText = stripped
	if hdrAct != nil {
		return hdrAct, userText, nil
	}
	if dirAct != nil && (dirAct.Model == "" || dirAct.Model == in.model) {
		return dirAct, userText, nil
	}
	if !useScript {
		return nil, userText, nil
	}
	if n := ctxWindow(in.model); n > 0 && in.promptTokens+in.maxTokens > n {
		return &Action{Error: "context", ctxLimit: n, ctxPrompt: in.promptTokens, ctxCompletion: in.maxTokens}, userText, nil
	}
	return c.srv.popScript(in.model), userText, nil
}

// decide resolves the action, runs its pre-answer faults (delay, status,
// error) and builds the reply. It returns nil when the request has already
// been answered (or abandoned).
func (c *reqCtx) decide(in *chatInput, p *provider) (*reply, *Action) {
	n := c.srv.nextChatID()
	act, userText, err := c.resolveAction(in, true)
	if err != nil {
		writeJSON(c.w, http.StatusBadRequest, p.errorBody(http.StatusBadRequest, "fake: "+err.Error()))
		return nil, nil
	}
	if !c.prelude(act, p) {
		return nil, nil
	}
	rp := &reply{n: n, promptTokens: in.promptTokens, finish: "stop", hasText: true}
	if act != nil {
		rp.usageExtra = act.Usage
	}
	switch {
	case act != nil && (act.Content != nil || len(act.ToolCalls) > 0):
		if act.Content != nil {
			rp.text = *act.Content
		} else {
			rp.hasText = false
		}
		for _, t := range act.ToolCalls {
			rp.calls = append(rp.calls, toolCall{name: t.Name, args: t.argsString(), input: t.argsObject()})
		}
	default:
		rp.text = "fake reply to: " + userText
	}
	if rp.hasText && in.jsonMode {
		rp.text = string(mustJSON(map[string]string{"reply": rp.text}))
	}
	if len(rp.calls) > 0 {
		rp.finish = "tool_calls"
	} else {
		// Stop sequences, then max_tokens (only for plain text answers).
		cut := -1
		for _, s := range in.stops {
			if s == "" {
				continue
			}
			if i := strings.Index(rp.text, s); i >= 0 && (cut < 0 || i < cut) {
				cut, rp.stopSeq = i, s
			}
		}
		if cut >= 0 {
			rp.text = rp.text[:cut]
			rp.finish = "stop_sequence"
		}
		if in.maxTokens > 0 && tokens(len(rp.text)) > in.maxTokens {
			rp.text = truncateUTF8(rp.text, in.maxTokens*4)
			rp.finish, rp.stopSeq = "length", ""
		}
	}
	size := 0
	if rp.hasText {
		size = len(rp.text)
	}
	for _, t := range rp.calls {
		size += len(t.name) + len(t.args)
	}
	rp.completionTokens = tokens(size)
	if act != nil && act.FinishReason != "" {
		rp.finish = act.FinishReason
	}
	return rp, act
}

// prelude runs delay_ms, then answers status / error actions. It returns
// false when the request is finished.
func (c *reqCtx) prelude(act *Action, p *provider) bool {
	if act == nil {
		return true
	}
	if act.DelayMs > 0 && !c.sleep(act.DelayMs) {
		return false
	}
	if act.Status != 0 {
		if c.stream && act.CutAfter != nil {
			return true // mid-stream error, sent by the event stream
		}
		c.setRetryHeaders(act)
		writeJSON(c.w, act.Status, p.errorBody(act.Status, act.Message))
		return false
	}
	if act.Error != "" {
		st, body := p.contextError(act)
		writeJSON(c.w, st, body)
		return false
	}
	return true
}

func (c *reqCtx) setRetryHeaders(act *Action) {
	if act.RetryAfter != "" {
		c.w.Header().Set("Retry-After", string(act.RetryAfter))
	}
	if act.RetryAfterMs != "" {
		c.w.Header().Set("retry-after-ms", string(act.RetryAfterMs))
	}
}

// sleep waits ms milliseconds; false if the client went away meanwhile.
func (c *reqCtx) sleep(ms int) bool {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.r.Context().Done():
		c.markCancelled()
		return false
	}
}

// abort drops the connection without finishing the response.
func (c *reqCtx) abort() {
	c.w.Flush()
	panic(http.ErrAbortHandler)
}

// defaultMessage is the error text when an action gives no message.
func defaultMessage(status int) string {
	switch status {
	case 400:
		return "Bad request (fake)."
	case 401:
		return "Invalid API key (fake)."
	case 403:
		return "Permission denied (fake)."
	case 404:
		return "Not found (fake)."
	case 408:
		return "Request timed out (fake)."
	case 413:
		return "Request too large (fake)."
	case 429:
		return "Rate limit exceeded (fake). Please try again later."
	case 500:
		return "Internal server error (fake)."
	case 502:
		return "Bad gateway (fake)."
	case 503:
		return "Service unavailable (fake)."
	case 504:
		return "Gateway timeout (fake)."
	case 529:
		return "Overloaded (fake)."
	}
	return fmt.Sprintf("Fake error (status %d).", status)
}

// ---- writing answers with faults ------------------------------------------

// writeBody sends a complete non-streaming answer, applying malformed
// (first half of the body only, declared length matching), trickle_ms
// (16-byte pieces) and cut_after (declared full length, half sent, then the
// connection is closed).
func (c *reqCtx) writeBody(act *Action, status int, contentType string, body []byte) {
	if act != nil && act.Malformed {
		body = body[:len(body)/2]
	}
	send := body
	cut := act != nil && act.CutAfter != nil
	if cut {
		send = body[:len(body)/2]
	}
	h := c.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(status)
	if act != nil && act.TrickleMs > 0 {
		for i := 0; i < len(send); i += 16 {
			if i > 0 && !c.sleep(act.TrickleMs) {
				return
			}
			end := min(i+16, len(send))
			if _, err := c.w.Write(send[i:end]); err != nil {
				c.markCancelled()
				return
			}
			c.w.Flush()
		}
	} else if _, err := c.w.Write(send); err != nil {
		c.markCancelled()
		return
	}
	if cut {
		c.abort()
	}
}

// eventStream writes SSE (or Gemini JSON-array) frames with faults applied.
type eventStream struct {
	c    *reqCtx
	act  *Action
	p    *provider
	n    int // frames written
	done bool
}

// startStream sends 200 with contentType and flushes the headers. It
// returns nil if the stream ended right away (cut_after 0).
func (c *reqCtx) startStream(act *Action, p *provider, contentType string) *eventStream {
	h := c.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	if act != nil && act.Status != 0 {
		c.setRetryHeaders(act)
	}
	c.w.WriteHeader(http.StatusOK)
	c.w.Flush()
	es := &eventStream{c: c, act: act, p: p}
	if es.checkCut() {
		return nil
	}
	return es
}

// checkCut ends the stream when cut_after frames have been written: with a
// mid-stream error frame if the action has a status, else by dropping the
// connection. It reports whether the stream is over.
func (es *eventStream) checkCut() bool {
	a := es.act
	if a == nil || a.CutAfter == nil || es.n < *a.CutAfter {
		return false
	}
	if a.Status != 0 {
		msg := a.Message
		if msg == "" {
			msg = defaultMessage(a.Status)
		}
		es.c.w.Write(es.p.streamError(a.Status, msg))
		es.c.w.Flush()
		es.done = true
		return true
	}
	es.c.abort()
	return true
}

// send writes one frame; false means stop (client gone, cut, malformed).
func (es *eventStream) send(frame []byte) bool {
	if es == nil || es.done {
		return false
	}
	c := es.c
	if es.n > 0 && es.act != nil && es.act.TrickleMs > 0 && !c.sleep(es.act.TrickleMs) {
		es.done = true
		return false
	}
	if c.r.Context().Err() != nil {
		c.markCancelled()
		es.done = true
		return false
	}
	malformed := es.act != nil && es.act.Malformed && es.n == 1
	if malformed {
		frame = corruptFrame(frame)
	}
	if _, err := c.w.Write(frame); err != nil {
		c.markCancelled()
		es.done = true
		return false
	}
	c.w.Flush()
	es.n++
	if malformed {
		es.done = true
		return false
	}
	return !es.checkCut()
}

// corruptFrame keeps a frame's framing but cuts its JSON payload in half.
func corruptFrame(frame []byte) []byte {
	i := bytes.Index(frame, []byte("data: "))
	if i < 0 {
		return append([]byte(nil), frame[:len(frame)/2]...)
	}
	j := i + len("data: ")
	end := bytes.LastIndex(frame, []byte("\n\n"))
	if end < j {
		end = len(frame)
	}
	out := append([]byte(nil), frame[:j+(end-j)/2]...)
	return append(out, "\n\n"...)
}

// sseData is the frame "data: <json>\n\n".
func sseData(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+8)
	out = append(out, "data: "...)
	out = append(out, payload...)
	return append(out, "\n\n"...)
}

// sseEvent is the frame "event: <name>\ndata: <json>\n\n".
func sseEvent(name string, payload []byte) []byte {
	out := make([]byte, 0, len(payload)+len(name)+16)
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	out = append(out, payload...)
	return append(out, "\n\n"...)
}
