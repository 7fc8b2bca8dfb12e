package agentcore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBase is the fake upstream's URL (http://127.0.0.1:PORT), started by
// TestMain: $FAKE_UPSTREAM names a built binary, otherwise it is built from
// tests/fakes/upstream.
var fakeBase string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "agentcore-go-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	bin := os.Getenv("FAKE_UPSTREAM")
	if bin == "" {
		bin = filepath.Join(tmp, "fake-upstream")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = filepath.Join("..", "..", "..", "tests", "fakes", "upstream")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the fake upstream:", err)
			return 1
		}
	}
	cmd := exec.Command(bin, "--port", "0", "--exit-on-stdin-eof")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting the fake upstream:", err)
		return 1
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 || f[0] != "LISTENING" {
		fmt.Fprintf(os.Stderr, "fake upstream said %q (%v)\n", line, err)
		return 1
	}
	fakeBase = "http://127.0.0.1:" + f[1]
	return m.Run()
}

func fakeConfig() Object {
	return Object{
		"providers":     Object{"fake": Object{"kind": "openai", "base_url": fakeBase + "/v1"}},
		"models":        []Object{{"name": "m", "provider": "fake", "model": "fake-model"}},
		"default_model": "m",
	}
}

func fakeDo(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, fakeBase+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func lastUpstreamMessages(t *testing.T) []Object {
	t.Helper()
	var rec struct {
		Body struct {
			Messages []Object `json:"messages"`
		} `json:"body"`
	}
	if err := json.Unmarshal(fakeDo(t, "GET", "/_fake/requests?last=1", nil), &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Body.Messages
}

func openCore(t *testing.T) *Core {
	t.Helper()
	fakeDo(t, "POST", "/_fake/reset", Object{})
	c, err := Open(fakeConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func user(text string) Object {
	return Object{"messages": []Object{{"role": "user", "content": text}}}
}

func content(t *testing.T, answer Object) string {
	t.Helper()
	choices, _ := answer["choices"].([]any)
	if len(choices) == 0 {
		t.Fatalf("no choices in %v", answer)
	}
	msg, _ := choices[0].(map[string]any)["message"].(map[string]any)
	s, _ := msg["content"].(string)
	return s
}

func deltaText(chunks []Object) string {
	var sb strings.Builder
	for _, c := range chunks {
		choices, _ := c["choices"].([]any)
		if len(choices) == 0 {
			continue
		}
		d, _ := choices[0].(map[string]any)["delta"].(map[string]any)
		s, _ := d["content"].(string)
		sb.WriteString(s)
	}
	return sb.String()
}
