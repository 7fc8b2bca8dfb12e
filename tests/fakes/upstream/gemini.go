package main

// Gemini API: POST /v1beta/models/{model}:{generateContent,
// streamGenerateContent, countTokens, embedContent, batchEmbedContents}.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

func geminiStatus(code int) string {
	switch code {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 409:
		return "ABORTED"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case 501:
		return "UNIMPLEMENTED"
	case 503:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if code < 500 {
		return "FAILED_PRECONDITION"
	}
	return "INTERNAL"
}

func geminiErrorJSON(code int, message string) []byte {
	if message == "" {
		message = defaultMessage(code)
	}
	return mustJSON(map[string]any{"error": map[string]any{
		"code": code, "message": message, "status": geminiStatus(code)}})
}

var geminiProvider = &provider{
	name:      "gemini",
	errorBody: geminiErrorJSON,
	contextError: func(a *Action) (int, []byte) {
		msg := "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
		switch {
		case a.Message != "":
			msg = a.Message
		case a.ctxLimit > 0:
			n := a.ctxPrompt
			if n <= a.ctxLimit {
				n += a.ctxCompletion
			}
			msg = fmt.Sprintf("The input token count (%d) exceeds the maximum number of tokens allowed (%d).", n, a.ctxLimit)
		}
		return 400, geminiErrorJSON(400, msg)
	},
	finish: func(g string) string {
		switch g {
		case "stop", "stop_sequence", "tool_calls":
			return "STOP"
		case "length":
			return "MAX_TOKENS"
		case "content_filter":
			return "SAFETY"
		}
		return g
	},
	streamError: func(status int, message string) []byte {
		return sseData(geminiErrorJSON(status, message))
	},
}

type gmPartIn struct {
	Text         *string `json:"text"`
	FunctionCall *struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	} `json:"functionCall"`
	FunctionResponse *struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse"`
}

type gmContentIn struct {
	Role  string     `json:"role"`
	Parts []gmPartIn `json:"parts"`
}

// text joins the text parts with a space; size adds function call args and
// function responses.
func (c gmContentIn) text() (text string, hasText bool, size int) {
	var texts []string
	for _, p := range c.Parts {
		if p.Text != nil {
			texts = append(texts, *p.Text)
		}
		if p.FunctionCall != nil {
			size += len(compactJSON(p.FunctionCall.Args))
		}
		if p.FunctionResponse != nil {
			size += len(compactJSON(p.FunctionResponse.Response))
		}
	}
	text = strings.Join(texts, " ")
	return text, len(texts) > 0, size + len(text)
}

type gmRequest struct {
	Contents          []gmContentIn `json:"contents"`
	SystemInstruction *gmContentIn  `json:"systemInstruction"`
	GenerationConfig  *struct {
		MaxOutputTokens  *int     `json:"maxOutputTokens"`
		StopSequences    []string `json:"stopSequences"`
		ResponseMimeType string   `json:"responseMimeType"`
	} `json:"generationConfig"`
}

type gmFunctionCall struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

type gmPartOut struct {
	Text         *string         `json:"text,omitempty"`
	FunctionCall *gmFunctionCall `json:"functionCall,omitempty"`
}

type gmContentOut struct {
	Role  string      `json:"role"`
	Parts []gmPartOut `json:"parts"`
}

type gmCandidate struct {
	Content      gmContentOut `json:"content"`
	FinishReason string       `json:"finishReason,omitempty"`
	Index        int          `json:"index"`
}

type gmResponse struct {
	Candidates    []gmCandidate   `json:"candidates"`
	UsageMetadata json.RawMessage `json:"usageMetadata,omitempty"`
	ModelVersion  string          `json:"modelVersion"`
	ResponseID    string          `json:"responseId"`
}

type gmUsage struct {
	PromptTokenCount     int `json:"promptTokenCount"`
	CandidatesTokenCount int `json:"candidatesTokenCount"`
	TotalTokenCount      int `json:"totalTokenCount"`
}

// geminiRoute splits ".../models/{model}:{method}".
func geminiRoute(path string) (model, method string) {
	rest := path[strings.LastIndex(path, "/models/")+len("/models/"):]
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return rest, ""
	}
	return rest[:i], rest[i+1:]
}

func (s *server) gemini(c *reqCtx) {
	bad := func(code int, msg string) { writeJSON(c.w, code, geminiErrorJSON(code, msg)) }
	model, method := geminiRoute(c.r.URL.Path)
	if model == "" {
		bad(404, "model is required in the URL")
		return
	}
	h := c.r.Header
	if h.Get("x-goog-api-key") == "" && c.r.URL.Query().Get("key") == "" && !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
		bad(403, "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
		return
	}
	switch method {
	case "generateContent", "streamGenerateContent", "countTokens":
		s.geminiGenerate(c, model, method)
	case "embedContent", "batchEmbedContents":
		s.geminiEmbed(c, model, method)
	default:
		bad(404, fmt.Sprintf("Method %q is not found for model %s.", method, model))
	}
}

func (s *server) geminiGenerate(c *reqCtx, model, method string) {
	p := geminiProvider
	bad := func(msg string) { writeJSON(c.w, 400, geminiErrorJSON(400, msg)) }
	var req gmRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		bad("Invalid JSON payload received. " + err.Error())
		return
	}
	if len(req.Contents) == 0 {
		bad("* GenerateContentRequest.contents: contents is not specified")
		return
	}
	in := &chatInput{model: model}
	if req.SystemInstruction != nil {
		_, _, size := req.SystemInstruction.text()
		in.promptTokens += tokens(size) + 3
	}
	for _, ct := range req.Contents {
		text, hasText, size := ct.text()
		in.promptTokens += tokens(size) + 3
		if (ct.Role == "user" || ct.Role == "") && hasText {
			in.userText = text
		}
	}
	if method == "countTokens" {
		writeJSON(c.w, 200, map[string]int{"totalTokens": in.promptTokens})
		return
	}
	if gc := req.GenerationConfig; gc != nil {
		if gc.MaxOutputTokens != nil && *gc.MaxOutputTokens > 0 {
			in.maxTokens = *gc.MaxOutputTokens
		}
		in.stops = gc.StopSequences
		in.jsonMode = gc.ResponseMimeType == "application/json"
	}
	stream := method == "streamGenerateContent"
	c.stream = stream

	rp, act := c.decide(in, p)
	if rp == nil {
		return
	}
	finish := p.finish(rp.finish)
	respID := fmt.Sprintf("fake-%d", rp.n)
	usage := mergeUsage(gmUsage{rp.promptTokens, rp.completionTokens, rp.promptTokens + rp.completionTokens}, rp.usageExtra)
	var calls []gmPartOut
	for _, tc := range rp.calls {
		calls = append(calls, gmPartOut{FunctionCall: &gmFunctionCall{Name: tc.name, Args: tc.input}})
	}
	resp := func(parts []gmPartOut, fin string, u json.RawMessage) []byte {
		return mustJSON(gmResponse{
			Candidates:    []gmCandidate{{Content: gmContentOut{Role: "model", Parts: parts}, FinishReason: fin}},
			UsageMetadata: u, ModelVersion: model, ResponseID: respID})
	}

	if !stream {
		var parts []gmPartOut
		if rp.hasText {
			t := rp.text
			parts = append(parts, gmPartOut{Text: &t})
		}
		parts = append(parts, calls...)
		c.writeBody(act, 200, "application/json", resp(parts, finish, usage))
		return
	}

	// Events: one per text piece (<= 8 bytes), then the function calls in
	// one event; the last event carries finishReason and usageMetadata.
	var events [][]gmPartOut
	if rp.hasText {
		for _, piece := range splitPieces(rp.text, 8) {
			events = append(events, []gmPartOut{{Text: &piece}})
		}
	}
	if len(calls) > 0 {
		events = append(events, calls)
	}
	if len(events) == 0 {
		empty := ""
		events = append(events, []gmPartOut{{Text: &empty}})
	}
	sse := c.r.URL.Query().Get("alt") == "sse"
	ctype := "application/json"
	if sse {
		ctype = "text/event-stream"
	}
	es := c.startStream(act, p, ctype)
	for i, parts := range events {
		var payload []byte
		if i == len(events)-1 {
			payload = resp(parts, finish, usage)
		} else {
			payload = resp(parts, "", nil)
		}
		var frame []byte
		switch {
		case sse:
			frame = sseData(payload)
		case i == 0:
			frame = append([]byte("["), payload...)
		default:
			frame = append([]byte(",\r\n"), payload...)
		}
		if !es.send(frame) {
			return
		}
	}
	if !sse {
		es.send([]byte("]"))
	}
}

func (s *server) geminiEmbed(c *reqCtx, model, method string) {
	type embedReq struct {
		Content              gmContentIn `json:"content"`
		OutputDimensionality *int        `json:"outputDimensionality"`
	}
	var reqs []embedReq
	if method == "batchEmbedContents" {
		var b struct {
			Requests []embedReq `json:"requests"`
		}
		if err := json.Unmarshal(c.body, &b); err != nil || len(b.Requests) == 0 {
			writeJSON(c.w, 400, geminiErrorJSON(400, "* BatchEmbedContentsRequest.requests: requests is required"))
			return
		}
		reqs = b.Requests
	} else {
		var r embedReq
		if err := json.Unmarshal(c.body, &r); err != nil {
			writeJSON(c.w, 400, geminiErrorJSON(400, "Invalid JSON payload received. "+err.Error()))
			return
		}
		reqs = []embedReq{r}
	}
	type values struct {
		Values []float32 `json:"values"`
	}
	out := make([]values, len(reqs))
	for i, r := range reqs {
		dim := 8
		if r.OutputDimensionality != nil {
			dim = *r.OutputDimensionality
		}
		if dim < 1 || dim > 4096 {
			writeJSON(c.w, http.StatusBadRequest, geminiErrorJSON(400, "outputDimensionality must be between 1 and 4096"))
			return
		}
		text, _, _ := r.Content.text()
		out[i] = values{embedVector(text, dim)}
	}
	act, ok := c.headerAction(model, geminiProvider)
	if !ok {
		return
	}
	var body []byte
	if method == "batchEmbedContents" {
		body = mustJSON(map[string]any{"embeddings": out})
	} else {
		body = mustJSON(map[string]any{"embedding": out[0]})
	}
	c.writeBody(act, 200, "application/json", body)
}
