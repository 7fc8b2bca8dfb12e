package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func startFixed(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx := newFixedServer()
	go fx.Serve(ln)
	t.Cleanup(fx.Close)
	return ln.Addr().String()
}

func TestFixedWithHTTPClient(t *testing.T) {
	addr := startFixed(t)
	url := "http://" + addr
	r := post(t, url+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
	assertEq(t, "status", r.status, 200)
	assertEq(t, "content-type", r.header.Get("Content-Type"), "application/json")
	m := r.json(t)
	assertEq(t, "content", get(m, "choices", 0, "message", "content"), any("fixed answer"))
	assertEq(t, "usage", num(get(m, "usage", "total_tokens")), 12)

	r = post(t, url+"/v1/chat/completions", `{"model":"m", "stream" : true}`, nil)
	assertEq(t, "sse type", r.header.Get("Content-Type"), "text/event-stream")
	evs := parseSSE(t, r.body)
	assertEq(t, "done", evs[len(evs)-1].data, "[DONE]")
	var text string
	for _, e := range evs[:len(evs)-1] {
		if s, ok := get(decode(t, e.data), "choices", 0, "delta", "content").(string); ok {
			text += s
		}
	}
	assertEq(t, "stream text", text, "fixed answer")
	r = post(t, url+"/v1/chat/completions", `{"stream":false}`, nil)
	assertEq(t, "stream false", r.header.Get("Content-Type"), "application/json")

	assertEq(t, "healthz", string(do(t, "GET", url+"/healthz", nil, nil).body), "ok")
	assertEq(t, "models", len(do(t, "GET", url+"/v1/models", nil, nil).json(t)["data"].([]any)), 3)
	assertEq(t, "404", do(t, "GET", url+"/nope", nil, nil).status, 404)
	assertEq(t, "stats", num(do(t, "GET", url+"/_fake/stats", nil, nil).json(t)["requests"]), 7)
}

func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func readResp(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("connection should be closed, got %v", err)
	}
}

func TestFixedRawProtocol(t *testing.T) {
	addr := startFixed(t)

	// Pipelining: three requests in one write, answered in order.
	c, br := dialRaw(t, addr)
	body := `{"model":"m","stream":true}`
	req := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" +
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: " + itoa(len(body)) + "\r\n\r\n" + body
	io.WriteString(c, req)
	resp, b := readResp(t, br)
	if resp.StatusCode != 200 || !json.Valid([]byte(b)) {
		t.Fatalf("first: %d %q", resp.StatusCode, b)
	}
	_, b = readResp(t, br)
	assertEq(t, "second", b, "ok")
	resp, b = readResp(t, br)
	assertEq(t, "third type", resp.Header.Get("Content-Type"), "text/event-stream")
	if !strings.HasSuffix(b, "data: [DONE]\n\n") {
		t.Fatalf("third: %q", b)
	}

	// Chunked body, Expect: 100-continue, then Connection: close.
	io.WriteString(c, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
	line, _ := br.ReadString('\n')
	assertEq(t, "continue", line, "HTTP/1.1 100 Continue\r\n")
	br.ReadString('\n')
	io.WriteString(c, "5\r\n{\"str\r\n9;ext=1\r\neam\":true\r\n1\r\n}\r\n0\r\n\r\n")
	resp, _ = readResp(t, br)
	assertEq(t, "chunked stream", resp.Header.Get("Content-Type"), "text/event-stream")
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
	resp, _ = readResp(t, br)
	if !resp.Close {
		t.Fatal("response should announce Connection: close")
	}
	expectClosed(t, c, br)

	// HTTP/1.0 closes by default.
	c, br = dialRaw(t, addr)
	io.WriteString(c, "GET /healthz HTTP/1.0\r\n\r\n")
	readResp(t, br)
	expectClosed(t, c, br)

	// Garbage: 400 and close.
	for _, junk := range []string{
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
		"POST / HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET " + strings.Repeat("a", 40000) + " HTTP/1.1\r\n\r\n",
	} {
		c, br = dialRaw(t, addr)
		io.WriteString(c, junk)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", junk[:10], err)
		}
		io.Copy(io.Discard, resp.Body)
		assertEq(t, "garbage status", resp.StatusCode, 400)
		expectClosed(t, c, br)
	}

	// A client vanishing mid-request is fine, and the server keeps serving.
	c, _ = dialRaw(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
	c.Close()
	assertEq(t, "still up", string(do(t, "GET", "http://"+addr+"/healthz", nil, nil).body), "ok")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
