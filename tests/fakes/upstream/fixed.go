package main

// Fixed-answer mode (--fixed): a minimal HTTP/1.1 server over raw TCP that
// answers every request with a precomputed response, for benchmarks.
//
// One goroutine per connection, a buffered reader and writer, keep-alive by
// default, "Connection: close" honoured, pipelined requests answered in
// order with one flush per batch. Anything it cannot parse gets a 400 and
// the connection is closed.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	fixedReadBuf  = 16 << 10
	fixedMaxBody  = 32 << 20
	fixedMaxHdrs  = 128
	fixedBodyJSON = `{"id":"chatcmpl-fixed","object":"chat.completion","created":1700000000,"model":"fake-model",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"fixed answer","refusal":null},"logprobs":null,"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12},"system_fingerprint":"fake"}`
)

func fixedChunk(delta, finish, usage string) string {
	choices := `[]`
	if delta != "" {
		choices = `[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}]`
	}
	s := `{"id":"chatcmpl-fixed","object":"chat.completion.chunk","created":1700000000,"model":"fake-model","system_fingerprint":"fake","choices":` + choices
	if usage != "" {
		s += `,"usage":` + usage
	}
	return "data: " + s + "}\n\n"
}

var fixedBodySSE = fixedChunk(`{"role":"assistant","content":""}`, "null", "") +
	fixedChunk(`{"content":"fixed"}`, "null", "") +
	fixedChunk(`{"content":" answer"}`, "null", "") +
	fixedChunk(`{}`, `"stop"`, "") +
	fixedChunk("", "", `{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}`) +
	"data: [DONE]\n\n"

const fixedModelsJSON = `{"object":"list","data":[{"id":"fake-model","object":"model","created":1700000000,"owned_by":"fake"},` +
	`{"id":"fake-small","object":"model","created":1700000000,"owned_by":"fake"},{"id":"fake-large","object":"model","created":1700000000,"owned_by":"fake"}]}`

// fixedResp is a precomputed response, with a keep-alive and a close form.
type fixedResp struct{ keep, close []byte }

func makeFixedResp(status, ctype, body string) fixedResp {
	build := func(extra string) []byte {
		return []byte("HTTP/1.1 " + status + "\r\nContent-Type: " + ctype +
			"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n" + extra + "\r\n" + body)
	}
	return fixedResp{keep: build(""), close: build("Connection: close\r\n")}
}

var (
	fxCompletion = makeFixedResp("200 OK", "application/json", fixedBodyJSON)
	fxStream     = makeFixedResp("200 OK", "text/event-stream", fixedBodySSE)
	fxHealth     = makeFixedResp("200 OK", "text/plain; charset=utf-8", "ok")
	fxModels     = makeFixedResp("200 OK", "application/json", fixedModelsJSON)
	fxNotFound   = makeFixedResp("404 Not Found", "application/json",
		`{"error":{"message":"Unknown request URL","type":"invalid_request_error","param":null,"code":"unknown_url"}}`)
	fxBadRequest = makeFixedResp("400 Bad Request", "text/plain; charset=utf-8", "bad request\n")
	fxTooLarge   = makeFixedResp("413 Content Too Large", "text/plain; charset=utf-8", "body too large\n")
	fxBadMethod  = makeFixedResp("405 Method Not Allowed", "text/plain; charset=utf-8", "method not allowed\n")
	fxContinue   = []byte("HTTP/1.1 100 Continue\r\n\r\n")
)

type fixedServer struct {
	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	closed   bool
	requests atomic.Int64
}

func newFixedServer() *fixedServer {
	return &fixedServer{conns: make(map[net.Conn]struct{})}
}

// Serve accepts connections until Close; it then returns net.ErrClosed.
func (f *fixedServer) Serve(ln net.Listener) error {
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	for {
		conn, err := ln.Accept()
		if err != nil {
			f.mu.Lock()
			closed := f.closed
			f.mu.Unlock()
			if closed {
				return net.ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			conn.Close()
			return net.ErrClosed
		}
		f.conns[conn] = struct{}{}
		f.mu.Unlock()
		go f.serveConn(conn)
	}
}

// Close stops accepting and closes every open connection.
func (f *fixedServer) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.ln != nil {
		f.ln.Close()
	}
	for c := range f.conns {
		c.Close()
	}
}

func (f *fixedServer) serveConn(conn net.Conn) {
	defer func() {
		conn.Close()
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
	}()
	br := bufio.NewReaderSize(conn, fixedReadBuf)
	bw := bufio.NewWriterSize(conn, fixedReadBuf)
	var scratch []byte
	for {
		resp, keep := f.serveOne(br, bw, &scratch)
		if resp == nil {
			bw.Flush()
			return
		}
		if _, err := bw.Write(resp); err != nil {
			return
		}
		if !keep {
			if bw.Flush() == nil {
				lingeringClose(conn)
			}
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// lingeringClose half-closes conn and drains what the client still sends
// for a moment, so that closing with unread input does not turn into a
// reset that could destroy the response in flight.
func lingeringClose(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite()
		tc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, tc, 1<<20)
	}
}

type fixedRoute int

const (
	routeCompletion fixedRoute = iota
	routeHealth
	routeModels
	routeStats
	routeNotFound
	routeBadMethod
)

// serveOne reads one request and returns the response to send and whether
// the connection stays open. nil means: close now (clean EOF, or a broken
// request whose 400 has already been buffered).
func (f *fixedServer) serveOne(br *bufio.Reader, bw *bufio.Writer, scratch *[]byte) ([]byte, bool) {
	fail := func(r fixedResp) ([]byte, bool) { return r.close, false }

	// Request line (tolerating empty lines before it).
	var line []byte
	var err error
	for i := 0; ; i++ {
		line, err = br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF && len(line) == 0 && i == 0 {
				return nil, false
			}
			if err == bufio.ErrBufferFull {
				return fail(fxBadRequest)
			}
			return nil, false // EOF or reset in the middle of a request
		}
		line = trimEOL(line)
		if len(line) > 0 {
			break
		}
		if i >= 4 {
			return fail(fxBadRequest)
		}
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return fail(fxBadRequest)
	}
	method := line[:sp1]
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return fail(fxBadRequest)
	}
	target, proto := rest[:sp2], rest[sp2+1:]
	for _, ch := range method {
		if ch < 'A' || ch > 'Z' {
			return fail(fxBadRequest)
		}
	}
	keep := true
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		keep = false
	default:
		return fail(fxBadRequest)
	}
	path := target
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	var route fixedRoute
	switch string(method) {
	case "POST":
		route = routeCompletion
	case "GET":
		switch string(path) {
		case "/healthz":
			route = routeHealth
		case "/v1/models":
			route = routeModels
		case "/_fake/stats":
			route = routeStats
		default:
			route = routeNotFound
		}
	default:
		route = routeBadMethod
	}

	// Headers. (line, method, target and path are invalid from here on.)
	contentLength := int64(-1)
	chunked, expectContinue := false, false
	for n := 0; ; n++ {
		if n > fixedMaxHdrs {
			return fail(fxBadRequest)
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			if err == bufio.ErrBufferFull {
				return fail(fxBadRequest)
			}
			return nil, false
		}
		line = trimEOL(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			return fail(fxBadRequest)
		}
		name, val := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case len(name) == 14 && bytes.EqualFold(name, []byte("content-length")):
			v, ok := parseDigits(val)
			if !ok || (contentLength >= 0 && contentLength != v) {
				return fail(fxBadRequest)
			}
			contentLength = v
		case len(name) == 10 && bytes.EqualFold(name, []byte("connection")):
			if containsFold(val, "close") {
				keep = false
			} else if containsFold(val, "keep-alive") && string(proto) == "HTTP/1.0" {
				keep = true
			}
		case len(name) == 17 && bytes.EqualFold(name, []byte("transfer-encoding")):
			if !bytes.EqualFold(val, []byte("chunked")) {
				return fail(fxBadRequest)
			}
			chunked = true
		case len(name) == 6 && bytes.EqualFold(name, []byte("expect")):
			expectContinue = bytes.EqualFold(val, []byte("100-continue"))
		}
	}
	if chunked && contentLength >= 0 {
		return fail(fxBadRequest)
	}
	if contentLength > fixedMaxBody {
		return fail(fxTooLarge)
	}
	if expectContinue && (chunked || contentLength > 0) {
		bw.Write(fxContinue)
		if bw.Flush() != nil {
			return nil, false
		}
	}

	// Body.
	stream := false
	switch {
	case chunked:
		body, ok := readChunked(br, (*scratch)[:0])
		if !ok {
			return fail(fxBadRequest)
		}
		*scratch = body
		stream = hasStreamTrue(body)
	case contentLength > 0 && contentLength <= fixedReadBuf:
		b, err := br.Peek(int(contentLength))
		if err != nil {
			return nil, false
		}
		stream = route == routeCompletion && hasStreamTrue(b)
		br.Discard(int(contentLength))
	case contentLength > 0:
		if int64(cap(*scratch)) < contentLength {
			*scratch = make([]byte, contentLength)
		}
		b := (*scratch)[:contentLength]
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, false
		}
		stream = hasStreamTrue(b)
	}
	f.requests.Add(1)

	var r fixedResp
	switch route {
	case routeCompletion:
		r = fxCompletion
		if stream {
			r = fxStream
		}
	case routeHealth:
		r = fxHealth
	case routeModels:
		r = fxModels
	case routeStats:
		r = makeFixedResp("200 OK", "application/json",
			`{"requests":`+strconv.FormatInt(f.requests.Load(), 10)+`,"in_flight":0,"max_in_flight":0,"cancelled":0}`)
	case routeNotFound:
		r = fxNotFound
	default:
		return fail(fxBadMethod)
	}
	if keep {
		return r.keep, true
	}
	return r.close, false
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func containsFold(b []byte, word string) bool {
	return bytes.Contains(bytes.ToLower(b), []byte(word))
}

var streamKey = []byte(`"stream"`)

// hasStreamTrue reports whether body contains "stream" : true.
func hasStreamTrue(b []byte) bool {
	for {
		i := bytes.Index(b, streamKey)
		if i < 0 {
			return false
		}
		b = b[i+len(streamKey):]
		j := skipSpace(b, 0)
		if j < len(b) && b[j] == ':' {
			j = skipSpace(b, j+1)
			if bytes.HasPrefix(b[j:], []byte("true")) {
				return true
			}
		}
	}
}

func skipSpace(b []byte, j int) int {
	for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\r' || b[j] == '\n') {
		j++
	}
	return j
}

// readChunked reads a chunked body (and its trailers) appending to dst.
func readChunked(br *bufio.Reader, dst []byte) ([]byte, bool) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return dst, false
		}
		line = trimEOL(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 || len(line) > 8 {
			return dst, false
		}
		size, err := strconv.ParseInt(string(line), 16, 64)
		if err != nil || size < 0 || int64(len(dst))+size > fixedMaxBody {
			return dst, false
		}
		if size == 0 {
			for { // trailers up to the empty line
				line, err := br.ReadSlice('\n')
				if err != nil {
					return dst, false
				}
				if len(trimEOL(line)) == 0 {
					return dst, true
				}
			}
		}
		start := len(dst)
		dst = append(dst, make([]byte, size)...)
		if _, err := io.ReadFull(br, dst[start:]); err != nil {
			return dst, false
		}
		crlf, err := br.ReadSlice('\n')
		if err != nil || len(trimEOL(crlf)) != 0 {
			return dst, false
		}
	}
}
