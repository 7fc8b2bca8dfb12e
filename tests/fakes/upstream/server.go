package main

// Normal mode: routing, request recording, the control endpoints under
// /_fake/ and the small helpers every provider shares.

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxRecords bounds memory when the fake is left running under load; the
// oldest recordings are dropped first (seq keeps counting).
const maxRecords = 50000

// fixedCreated is the "created" timestamp of every answer.
const fixedCreated = 1700000000

type record struct {
	Seq     int64             `json:"seq"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

type server struct {
	log *log.Logger

	mu          sync.Mutex
	records     []record
	seq         int64 // recordings made since reset
	script      []Action
	chatSeq     int64 // chat requests since reset (ids: chatcmpl-fake-<n>, msg_fake_<n>)
	requests    int64
	inFlight    int64
	maxInFlight int64
	cancelled   int64
}

func newServer(logger *log.Logger) *server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	return &server{log: logger}
}

// reqCtx carries one API request through a provider handler.
type reqCtx struct {
	srv         *server
	w           *respWriter
	r           *http.Request
	body        []byte
	isCancelled bool
	stream      bool
}

// respWriter remembers the status for the log and exposes Flush.
type respWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *respWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

func (w *respWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/healthz" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
		return
	}
	if strings.HasPrefix(path, "/_fake/") {
		s.control(w, r)
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, openAIErrorBody("request body too large or unreadable", "invalid_request_error", ""))
		return
	}
	s.record(r, body)
	s.enter()
	rw := &respWriter{ResponseWriter: w}
	c := &reqCtx{srv: s, w: rw, r: r, body: body}
	start := time.Now()
	defer func() {
		s.leave()
		status := rw.status
		if !rw.wrote {
			status = 0
		}
		note := ""
		if c.isCancelled {
			note = " (client went away)"
		}
		s.log.Printf("%s %s -> %d in %s%s", r.Method, r.URL.RequestURI(), status, time.Since(start).Round(time.Microsecond), note)
	}()
	s.route(c)
}

func (s *server) route(c *reqCtx) {
	r := c.r
	path := r.URL.Path
	post := r.Method == http.MethodPost
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		if c.requireMethod(post) {
			s.openAIChat(c)
		}
	case strings.HasSuffix(path, "/embeddings") && !strings.HasPrefix(path, "/api/"):
		if c.requireMethod(post) {
			s.openAIEmbeddings(c)
		}
	case path == "/v1/models" || path == "/models":
		if c.requireMethod(r.Method == http.MethodGet) {
			s.openAIModels(c)
		}
	case path == "/api/embed" || path == "/api/embeddings":
		if c.requireMethod(post) {
			s.ollamaEmbed(c)
		}
	case path == "/v1/messages":
		if c.requireMethod(post) {
			s.anthropicMessages(c)
		}
	case strings.Contains(path, "/models/") && strings.Contains(path[strings.LastIndex(path, "/models/"):], ":"):
		if c.requireMethod(post) {
			s.gemini(c)
		}
	default:
		writeJSON(c.w, http.StatusNotFound, openAIErrorBody("Unknown request URL: "+r.Method+" "+path, "invalid_request_error", "unknown_url"))
	}
}

func (c *reqCtx) requireMethod(ok bool) bool {
	if !ok {
		writeJSON(c.w, http.StatusMethodNotAllowed, openAIErrorBody("Method "+c.r.Method+" not allowed on "+c.r.URL.Path, "invalid_request_error", "method_not_allowed"))
	}
	return ok
}

// ---- recording and counters ------------------------------------------------

func (s *server) record(r *http.Request, body []byte) {
	h := make(map[string]string, len(r.Header)+1)
	for k, v := range r.Header {
		h[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	if r.Host != "" {
		h["host"] = r.Host
	}
	var b json.RawMessage
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		b = json.RawMessage("null")
	case json.Valid(body):
		var buf bytes.Buffer
		json.Compact(&buf, body)
		b = buf.Bytes()
	default:
		s := string(body)
		if !utf8.ValidString(s) {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
		b = mustJSON(s)
	}
	s.mu.Lock()
	s.seq++
	s.requests++
	s.records = append(s.records, record{Seq: s.seq, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: h, Body: b})
	if len(s.records) > maxRecords {
		s.records = append([]record(nil), s.records[len(s.records)-maxRecords/2:]...)
	}
	s.mu.Unlock()
}

func (s *server) enter() {
	s.mu.Lock()
	s.inFlight++
	if s.inFlight > s.maxInFlight {
		s.maxInFlight = s.inFlight
	}
	s.mu.Unlock()
}

func (s *server) leave() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
}

func (s *server) nextChatID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chatSeq++
	return s.chatSeq
}

// markCancelled counts the request once as abandoned by its client.
func (c *reqCtx) markCancelled() {
	if c.isCancelled {
		return
	}
	c.isCancelled = true
	c.srv.mu.Lock()
	c.srv.cancelled++
	c.srv.mu.Unlock()
}

// popScript removes and returns the first queued action for model.
func (s *server) popScript(model string) *Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.script {
		if s.script[i].Model == "" || s.script[i].Model == model {
			a := s.script[i]
			s.script = append(s.script[:i:i], s.script[i+1:]...)
			return &a
		}
	}
	return nil
}

// ---- control endpoints -----------------------------------------------------

func (s *server) control(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_fake/requests":
		if r.Method != http.MethodGet {
			break
		}
		s.mu.Lock()
		recs := append([]record(nil), s.records...)
		s.mu.Unlock()
		if last := r.URL.Query().Get("last"); last != "" {
			n, err := strconv.Atoi(last)
			if err != nil || n < 1 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad last"})
				return
			}
			if len(recs) == 0 {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": "no requests recorded"})
				return
			}
			if n == 1 {
				writeJSON(w, http.StatusOK, recs[len(recs)-1])
				return
			}
			if n < len(recs) {
				recs = recs[len(recs)-n:]
			}
		}
		if recs == nil {
			recs = []record{}
		}
		writeJSON(w, http.StatusOK, recs)
		return
	case "/_fake/reset":
		if r.Method != http.MethodPost {
			break
		}
		s.mu.Lock()
		s.records, s.seq, s.script, s.chatSeq = nil, 0, nil, 0
		s.requests, s.maxInFlight, s.cancelled = 0, s.inFlight, 0
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
		return
	case "/_fake/stats":
		if r.Method != http.MethodGet {
			break
		}
		s.mu.Lock()
		st := map[string]int64{"requests": s.requests, "in_flight": s.inFlight, "max_in_flight": s.maxInFlight, "cancelled": s.cancelled}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, st)
		return
	case "/_fake/script":
		switch r.Method {
		case http.MethodGet:
			s.mu.Lock()
			q := append([]Action{}, s.script...)
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, q)
			return
		case http.MethodPost:
			body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			acts, err := parseActions(body)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad script: " + err.Error()})
				return
			}
			s.mu.Lock()
			s.script = append(s.script, acts...)
			n := len(s.script)
			s.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]int{"queued": n})
			return
		}
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown control endpoint " + r.URL.Path})
		return
	}
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
}

// ---- shared helpers --------------------------------------------------------

// mustJSON encodes v without HTML escaping and without a trailing newline.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b []byte
	switch x := v.(type) {
	case []byte:
		b = x
	default:
		b = mustJSON(v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// tokens is the fake's token count: ceil(bytes/4).
func tokens(n int) int { return (n + 3) / 4 }

// compactJSON returns raw compacted, or "{}" for empty input.
func compactJSON(raw json.RawMessage) string {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "{}"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return string(raw)
	}
	return buf.String()
}

// splitPieces cuts s into pieces of at most n bytes without splitting a
// UTF-8 sequence. An empty string gives no pieces.
func splitPieces(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		end := n
		if end >= len(s) {
			out = append(out, s)
			break
		}
		for end > 1 && !utf8.RuneStart(s[end]) {
			end--
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// mergeUsage encodes base and overlays the keys of extra (shallow merge).
func mergeUsage(base any, extra map[string]json.RawMessage) json.RawMessage {
	b := mustJSON(base)
	if len(extra) == 0 {
		return b
	}
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m[k] = extra[k]
	}
	return mustJSON(m)
}

// stringOrList decodes a JSON string or array of strings.
func stringOrList(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var l []string
	json.Unmarshal(raw, &l)
	return l
}
