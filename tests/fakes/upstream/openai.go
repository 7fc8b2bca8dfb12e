package main

// OpenAI-compatible endpoints: chat completions (also Azure paths),
// embeddings, models, and Ollama's /api/embed.

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// ---- errors ----------------------------------------------------------------

type openAIError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func openAIErrorBody(message, typ, code string) []byte {
	e := openAIError{Message: message, Type: typ}
	if code != "" {
		e.Code = &code
	}
	return mustJSON(map[string]openAIError{"error": e})
}

func openAIErrorType(status int) (typ, code string) {
	switch {
	case status == 401:
		return "authentication_error", "invalid_api_key"
	case status == 403:
		return "permission_error", ""
	case status == 404:
		return "not_found_error", ""
	case status == 429:
		return "rate_limit_error", "rate_limit_exceeded"
	case status >= 500:
		return "server_error", ""
	}
	return "invalid_request_error", ""
}

var openAIProvider = &provider{
	name: "openai",
	errorBody: func(status int, message string) []byte {
		if message == "" {
			message = defaultMessage(status)
		}
		typ, code := openAIErrorType(status)
		return openAIErrorBody(message, typ, code)
	},
	contextError: func(a *Action) (int, []byte) {
		var msg string
		switch a.Error {
		case "vllm_context":
			msg = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion."
		case "ollama_context":
			msg = "prompt too long; exceeded max context length by 100 tokens"
		default:
			switch {
			case a.ctxLimit == 0:
				msg = "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages."
			case a.ctxCompletion > 0:
				msg = fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
					a.ctxLimit, a.ctxPrompt+a.ctxCompletion, a.ctxPrompt, a.ctxCompletion)
			default:
				msg = fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.",
					a.ctxLimit, a.ctxPrompt)
			}
		}
		if a.Message != "" {
			msg = a.Message
		}
		return 400, mustJSON(map[string]any{"error": map[string]any{
			"message": msg, "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
	},
	finish: func(g string) string {
		if g == "stop_sequence" {
			return "stop"
		}
		return g
	},
	streamError: func(status int, message string) []byte {
		typ, code := openAIErrorType(status)
		return sseData(openAIErrorBody(message, typ, code))
	},
}

// ---- chat completions ------------------------------------------------------

type oaToolCallIn struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type oaMessageIn struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []oaToolCallIn  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type oaChatRequest struct {
	Model         string        `json:"model"`
	Messages      []oaMessageIn `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

// openAIContentText is the text of a message content: a string, or the text
// parts of an array joined with a space.
func openAIContentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	json.Unmarshal(raw, &parts)
	var texts []string
	for _, p := range parts {
		if p.Type == "text" || p.Type == "input_text" || (p.Type == "" && p.Text != "") {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, " ")
}

// azureDeployment returns the deployment of an Azure OpenAI path.
func azureDeployment(path string) string {
	const marker = "/openai/deployments/"
	i := strings.Index(path, marker)
	if i < 0 {
		return ""
	}
	rest := path[i+len(marker):]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

type oaFunctionOut struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type oaToolCallOut struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	Function oaFunctionOut `json:"function"`
}

type oaToolCallDelta struct {
	Index    int           `json:"index"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function oaFunctionOut `json:"function"`
}

type oaMessageOut struct {
	Role      string          `json:"role"`
	Content   *string         `json:"content"`
	Refusal   *string         `json:"refusal"`
	ToolCalls []oaToolCallOut `json:"tool_calls,omitempty"`
}

type oaChoice struct {
	Index        int          `json:"index"`
	Message      oaMessageOut `json:"message"`
	Logprobs     *struct{}    `json:"logprobs"`
	FinishReason string       `json:"finish_reason"`
}

type oaCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []oaChoice      `json:"choices"`
	Usage             json.RawMessage `json:"usage"`
	SystemFingerprint string          `json:"system_fingerprint"`
}

type oaDelta struct {
	Role      string            `json:"role,omitempty"`
	Content   *string           `json:"content,omitempty"`
	ToolCalls []oaToolCallDelta `json:"tool_calls,omitempty"`
}

type oaChunkChoice struct {
	Index        int       `json:"index"`
	Delta        oaDelta   `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type oaChunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           []oaChunkChoice `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type oaUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func (s *server) openAIChat(c *reqCtx) {
	p := openAIProvider
	var req oaChatRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeJSON(c.w, 400, openAIErrorBody("We could not parse the JSON body of your request. ("+err.Error()+")", "invalid_request_error", ""))
		return
	}
	model := req.Model
	if dep := azureDeployment(c.r.URL.Path); dep != "" {
		model = dep
	}
	if model == "" {
		writeJSON(c.w, 400, openAIErrorBody("you must provide a model parameter", "invalid_request_error", ""))
		return
	}
	if len(req.Messages) == 0 {
		writeJSON(c.w, 400, openAIErrorBody("[] is too short - 'messages'", "invalid_request_error", ""))
		return
	}
	c.stream = req.Stream

	in := &chatInput{model: model, stops: stringOrList(req.Stop)}
	for _, m := range req.Messages {
		text := openAIContentText(m.Content)
		size := len(text)
		for _, tc := range m.ToolCalls {
			size += len(tc.Function.Arguments)
		}
		in.promptTokens += tokens(size) + 3
		if m.Role == "user" {
			in.userText = text
		}
	}
	if req.MaxCompletionTokens != nil && *req.MaxCompletionTokens > 0 {
		in.maxTokens = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil && *req.MaxTokens > 0 {
		in.maxTokens = *req.MaxTokens
	}
	if req.ResponseFormat != nil && (req.ResponseFormat.Type == "json_object" || req.ResponseFormat.Type == "json_schema") {
		in.jsonMode = true
	}

	rp, act := c.decide(in, p)
	if rp == nil {
		return
	}
	id := fmt.Sprintf("chatcmpl-fake-%d", rp.n)
	finish := p.finish(rp.finish)
	usage := mergeUsage(oaUsage{rp.promptTokens, rp.completionTokens, rp.promptTokens + rp.completionTokens}, rp.usageExtra)

	if !req.Stream {
		msg := oaMessageOut{Role: "assistant"}
		if rp.hasText {
			t := rp.text
			msg.Content = &t
		}
		for i, tc := range rp.calls {
			msg.ToolCalls = append(msg.ToolCalls, oaToolCallOut{
				ID: fmt.Sprintf("call_%d_%d", rp.n, i), Type: "function",
				Function: oaFunctionOut{Name: tc.name, Arguments: tc.args}})
		}
		body := mustJSON(oaCompletion{
			ID: id, Object: "chat.completion", Created: fixedCreated, Model: model,
			Choices: []oaChoice{{Index: 0, Message: msg, FinishReason: finish}},
			Usage:   usage, SystemFingerprint: "fake",
		})
		c.writeBody(act, 200, "application/json", body)
		return
	}

	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	chunk := func(d oaDelta, fin *string) []byte {
		ch := oaChunk{ID: id, Object: "chat.completion.chunk", Created: fixedCreated, Model: model,
			SystemFingerprint: "fake", Choices: []oaChunkChoice{{Index: 0, Delta: d, FinishReason: fin}}}
		if includeUsage {
			ch.Usage = json.RawMessage("null")
		}
		return sseData(mustJSON(ch))
	}
	es := c.startStream(act, p, "text/event-stream")
	empty := ""
	if !es.send(chunk(oaDelta{Role: "assistant", Content: &empty}, nil)) {
		return
	}
	if rp.hasText {
		for _, piece := range splitPieces(rp.text, 8) {
			if !es.send(chunk(oaDelta{Content: &piece}, nil)) {
				return
			}
		}
	}
	for i, tc := range rp.calls {
		first := oaToolCallDelta{Index: i, ID: fmt.Sprintf("call_%d_%d", rp.n, i), Type: "function",
			Function: oaFunctionOut{Name: tc.name, Arguments: ""}}
		if !es.send(chunk(oaDelta{ToolCalls: []oaToolCallDelta{first}}, nil)) {
			return
		}
		for _, piece := range splitPieces(tc.args, 8) {
			if !es.send(chunk(oaDelta{ToolCalls: []oaToolCallDelta{{Index: i, Function: oaFunctionOut{Arguments: piece}}}}, nil)) {
				return
			}
		}
	}
	if !es.send(chunk(oaDelta{}, &finish)) {
		return
	}
	if includeUsage {
		ch := oaChunk{ID: id, Object: "chat.completion.chunk", Created: fixedCreated, Model: model,
			SystemFingerprint: "fake", Choices: []oaChunkChoice{}, Usage: usage}
		if !es.send(sseData(mustJSON(ch))) {
			return
		}
	}
	es.send([]byte("data: [DONE]\n\n"))
}

// ---- embeddings ------------------------------------------------------------

// embedVector is the deterministic unit vector of text: x = FNV-1a-64(text)
// (0 replaced by 0x9E3779B97F4A7C15); per component: xorshift64
// (x ^= x<<13; x ^= x>>7; x ^= x<<17), value = (x>>11)/2^53*2-1; then the
// vector is L2-normalised and rounded to float32.
func embedVector(text string, dim int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(text))
	x := h.Sum64()
	if x == 0 {
		x = 0x9E3779B97F4A7C15
	}
	v := make([]float64, dim)
	var norm float64
	for i := range v {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v[i] = float64(x>>11)/float64(uint64(1)<<53)*2 - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	out := make([]float32, dim)
	for i := range v {
		if norm > 0 {
			out[i] = float32(v[i] / norm)
		}
	}
	return out
}

func embedBase64(v []float32) string {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return base64.StdEncoding.EncodeToString(b)
}

// embeddingInputs decodes an OpenAI "input": a string, an array of strings,
// an array of token ints (one input) or an array of arrays of token ints.
// Token arrays become their decimal values joined with single spaces.
func embeddingInputs(raw json.RawMessage) ([]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || len(items) == 0 {
		return nil, fmt.Errorf("'input' must be a non-empty string or array")
	}
	if ints, ok := tokenText(raw); ok {
		return []string{ints}, nil
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		if json.Unmarshal(it, &s) == nil {
			out = append(out, s)
			continue
		}
		if t, ok := tokenText(it); ok {
			out = append(out, t)
			continue
		}
		return nil, fmt.Errorf("'input' items must be strings or arrays of integers")
	}
	return out, nil
}

func tokenText(raw json.RawMessage) (string, bool) {
	var ints []int64
	if json.Unmarshal(raw, &ints) != nil {
		return "", false
	}
	parts := make([]string, len(ints))
	for i, n := range ints {
		parts[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(parts, " "), true
}

// headerAction is the X-Fake-Action of a non-chat request (scripts and
// directives only apply to chat).
func (c *reqCtx) headerAction(model string, p *provider) (*Action, bool) {
	act, _, err := c.resolveAction(&chatInput{model: model}, false)
	if err != nil {
		writeJSON(c.w, http.StatusBadRequest, p.errorBody(http.StatusBadRequest, "fake: "+err.Error()))
		return nil, false
	}
	return act, c.prelude(act, p)
}

func (s *server) openAIEmbeddings(c *reqCtx) {
	p := openAIProvider
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		Dimensions     *int            `json:"dimensions"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeJSON(c.w, 400, openAIErrorBody("We could not parse the JSON body of your request. ("+err.Error()+")", "invalid_request_error", ""))
		return
	}
	model := req.Model
	if dep := azureDeployment(c.r.URL.Path); dep != "" {
		model = dep
	}
	inputs, err := embeddingInputs(req.Input)
	if err != nil {
		writeJSON(c.w, 400, openAIErrorBody(err.Error(), "invalid_request_error", ""))
		return
	}
	dim := 8
	if req.Dimensions != nil {
		dim = *req.Dimensions
	}
	if dim < 1 || dim > 4096 {
		writeJSON(c.w, 400, openAIErrorBody("'dimensions' must be between 1 and 4096", "invalid_request_error", ""))
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		writeJSON(c.w, 400, openAIErrorBody("'encoding_format' must be 'float' or 'base64'", "invalid_request_error", ""))
		return
	}
	act, ok := c.headerAction(model, p)
	if !ok {
		return
	}
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, len(inputs))
	n := 0
	for i, t := range inputs {
		v := embedVector(t, dim)
		var e any = v
		if req.EncodingFormat == "base64" {
			e = embedBase64(v)
		}
		data[i] = item{"embedding", i, e}
		n += tokens(len(t))
	}
	body := mustJSON(map[string]any{
		"object": "list", "data": data, "model": model,
		"usage": map[string]int{"prompt_tokens": n, "total_tokens": n},
	})
	c.writeBody(act, 200, "application/json", body)
}

func (s *server) openAIModels(c *reqCtx) {
	type m struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	var data []m
	for _, id := range []string{"fake-model", "fake-small", "fake-large"} {
		data = append(data, m{id, "model", fixedCreated, "fake"})
	}
	act, ok := c.headerAction("", openAIProvider)
	if !ok {
		return
	}
	c.writeBody(act, 200, "application/json", mustJSON(map[string]any{"object": "list", "data": data}))
}

// ollamaEmbed serves /api/embed {model, input, dimensions?} and the older
// /api/embeddings {model, prompt}.
func (s *server) ollamaEmbed(c *reqCtx) {
	var req struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Prompt     *string         `json:"prompt"`
		Dimensions int             `json:"dimensions"`
	}
	if err := json.Unmarshal(c.body, &req); err != nil {
		writeJSON(c.w, 400, map[string]string{"error": "invalid JSON: " + err.Error()})
		return
	}
	dim := 8
	if req.Dimensions > 0 && req.Dimensions <= 4096 {
		dim = req.Dimensions
	}
	act, ok := c.headerAction(req.Model, openAIProvider)
	if !ok {
		return
	}
	if c.r.URL.Path == "/api/embeddings" {
		text := ""
		if req.Prompt != nil {
			text = *req.Prompt
		}
		c.writeBody(act, 200, "application/json", mustJSON(map[string]any{"embedding": embedVector(text, dim)}))
		return
	}
	inputs := stringOrList(req.Input)
	if len(inputs) == 0 {
		writeJSON(c.w, 400, map[string]string{"error": "input is required"})
		return
	}
	vecs := make([][]float32, len(inputs))
	n := 0
	for i, t := range inputs {
		vecs[i] = embedVector(t, dim)
		n += tokens(len(t))
	}
	c.writeBody(act, 200, "application/json", mustJSON(map[string]any{
		"model": req.Model, "embeddings": vecs, "prompt_eval_count": n}))
}
