// Command chat: a session with memory and a streamed answer, through the Go
// binding.
//
//	go run . CONFIG.json
//	AGENTCORE_CONFIG='{"providers": ...}' go run .
//
// CONFIG is the library's JSON configuration (docs/config.md), as a file or,
// in $AGENTCORE_CONFIG, as a file name or JSON text. The same program is in
// examples/python.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/libagentcore/agentcore-go/agentcore"
)

func loadConfig() (string, error) {
	src := os.Getenv("AGENTCORE_CONFIG")
	if len(os.Args) > 1 {
		src = os.Args[1]
	}
	if src == "" {
		return "", errors.New("usage: chat CONFIG.json (or set AGENTCORE_CONFIG)")
	}
	if strings.HasPrefix(strings.TrimSpace(src), "{") {
		return src, nil
	}
	b, err := os.ReadFile(src)
	return string(b), err
}

func ask(text string) agentcore.Object {
	return agentcore.Object{"messages": []agentcore.Object{{"role": "user", "content": text}}}
}

func reply(answer agentcore.Object) string {
	choices, _ := answer["choices"].([]any)
	if len(choices) == 0 {
		return ""
	}
	msg, _ := choices[0].(map[string]any)["message"].(map[string]any)
	s, _ := msg["content"].(string)
	return s
}

func run() error {
	config, err := loadConfig()
	if err != nil {
		return err
	}
	core, err := agentcore.Open(config)
	if err != nil {
		return err
	}
	defer core.Close()
	session, err := core.Session("", agentcore.Object{"title": "example"})
	if err != nil {
		return err
	}
	defer session.Close()
	fmt.Printf("libagentcore %s, session %s\n", agentcore.Version(), session.ID())

	// Two turns: the second is sent with the first one's history.
	for _, text := range []string{"My name is Ada. Please remember it.", "What is my name?"} {
		answer, err := session.Chat(ask(text))
		if err != nil {
			return err
		}
		fmt.Printf("> %s\n%s\n", text, reply(answer))
	}

	// A streamed answer: chunks as they arrive, through a channel.
	text := "Tell me a short story about a lighthouse."
	fmt.Printf("> %s\n", text)
	stream := session.ChatChan(ask(text))
	for chunk := range stream.C {
		choices, _ := chunk["choices"].([]any)
		for _, c := range choices {
			delta, _ := c.(map[string]any)["delta"].(map[string]any)
			s, _ := delta["content"].(string)
			fmt.Print(s)
		}
	}
	fmt.Println()
	if _, err := stream.Result(); err != nil {
		return err
	}
	msgs, err := session.Messages(nil)
	if err != nil {
		return err
	}
	fmt.Printf("(%d messages stored)\n", len(msgs))
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
