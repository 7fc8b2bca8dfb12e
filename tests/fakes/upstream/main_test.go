package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI starts run() with args and returns the base URL, the stdin writer
// and a channel that gets run's result.
func runCLI(t *testing.T, args ...string) (string, *io.PipeWriter, chan error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(args, inR, outW, io.Discard, nil)
		outW.Close()
		done <- err
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("no LISTENING line: %v", err)
	}
	go io.Copy(io.Discard, outR)
	if !strings.HasPrefix(line, "LISTENING ") {
		t.Fatalf("first line %q", line)
	}
	port := strings.TrimSpace(strings.TrimPrefix(line, "LISTENING "))
	return "http://127.0.0.1:" + port, inW, done
}

func waitDone(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after stdin EOF")
	}
}

func TestCLIExitOnStdinEOF(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "fake.log")
	url, stdin, done := runCLI(t, "--port", "0", "--exit-on-stdin-eof", "--log", logFile)
	r := post(t, url+"/v1/chat/completions", chatBody("m", "hi", nil), nil)
	assertEq(t, "content", content(t, r), "fake reply to: hi")
	stdin.Close()
	waitDone(t, done)
	b, _ := os.ReadFile(logFile)
	if !strings.Contains(string(b), "POST /v1/chat/completions -> 200") {
		t.Fatalf("log: %q", b)
	}

	url, stdin, done = runCLI(t, "--fixed", "--exit-on-stdin-eof", "--host", "127.0.0.1")
	assertEq(t, "fixed", string(do(t, "GET", url+"/healthz", nil, nil).body), "ok")
	stdin.Close()
	waitDone(t, done)
}

func TestCLIBadArgs(t *testing.T) {
	for _, args := range [][]string{{"--port", "-1"}, {"--nope"}, {"extra"}} {
		if err := run(args, strings.NewReader(""), io.Discard, io.Discard, nil); err == nil {
			t.Fatalf("%v: expected an error", args)
		}
	}
}
