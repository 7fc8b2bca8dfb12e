package agentcore

import (
	"errors"
	"strings"
	"testing"
)

func TestChatReturnsTheUpstreamAnswer(t *testing.T) {
	c := openCore(t)
	answer, err := c.Chat(user("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, answer); got != "fake reply to: hello" {
		t.Fatalf("content %q", got)
	}
	if _, ok := answer["agentcore"]; !ok {
		t.Fatal("no agentcore object in the answer")
	}
}

func TestChatAcceptsJSONText(t *testing.T) {
	c := openCore(t)
	answer, err := c.Chat(`{"messages":[{"role":"user","content":"as text"}]}`)
	if err != nil || content(t, answer) != "fake reply to: as text" {
		t.Fatal(answer, err)
	}
}

func TestChatStreamCallbackGetsChunksAndTheWholeAnswer(t *testing.T) {
	c := openCore(t)
	var chunks []Object
	answer, err := c.ChatStream(user("stream me please"), func(ch Object) error {
		chunks = append(chunks, ch)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 3 {
		t.Fatalf("%d chunks", len(chunks))
	}
	if deltaText(chunks) != "fake reply to: stream me please" || content(t, answer) != deltaText(chunks) {
		t.Fatalf("streamed %q, answer %q", deltaText(chunks), content(t, answer))
	}
}

func TestStreamCallbackErrorStopsTheCall(t *testing.T) {
	c := openCore(t)
	mine := errors.New("enough")
	_, err := c.ChatStream(user("stop at once"), func(Object) error { return mine })
	if !errors.Is(err, mine) || !errors.Is(err, ErrUserAbort) {
		t.Fatalf("err = %v", err)
	}
	if a, err := c.Chat(user("still usable")); err != nil || content(t, a) != "fake reply to: still usable" {
		t.Fatal(a, err)
	}
}

func TestStreamCallbackPanicIsRepanickedOnTheGoSide(t *testing.T) {
	c := openCore(t)
	defer func() {
		if r := recover(); r != "boom" {
			t.Fatalf("recovered %v", r)
		}
	}()
	_, _ = c.ChatStream(user("panic"), func(Object) error { panic("boom") })
	t.Fatal("no panic")
}

func TestChatChanStreamsChunksThenTheResult(t *testing.T) {
	c := openCore(t)
	s := c.ChatChan(user("through a channel"))
	var chunks []Object
	for ch := range s.C {
		chunks = append(chunks, ch)
	}
	answer, err := s.Result()
	if err != nil {
		t.Fatal(err)
	}
	if deltaText(chunks) != "fake reply to: through a channel" || content(t, answer) != deltaText(chunks) {
		t.Fatalf("streamed %q", deltaText(chunks))
	}
}

func TestChatChanClosedEarlyStopsTheCall(t *testing.T) {
	c := openCore(t)
	s := c.ChatChan(user("a long answer that streams in many small pieces"))
	<-s.C
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if a, err := c.Chat(user("after")); err != nil || content(t, a) != "fake reply to: after" {
		t.Fatal(a, err)
	}
}

func TestChatAsyncCompletesInsideRun(t *testing.T) {
	c := openCore(t)
	var got Object
	var gotErr error
	n := 0
	call, err := c.ChatAsync(user("later"), nil, func(a Object, err error) { got, gotErr, n = a, err, n+1 })
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("done ran inside the start")
	}
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	if n != 1 || gotErr != nil || content(t, got) != "fake reply to: later" {
		t.Fatal(n, got, gotErr)
	}
	call.Cancel() // after completion: does nothing
}

func TestEmbedIsDeterministic(t *testing.T) {
	c := openCore(t)
	a, err := c.Embed(Object{"model": "m", "input": []string{"alpha", "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Embed(Object{"model": "m", "input": "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	da := a["data"].([]any)
	db := b["data"].([]any)
	va := da[0].(map[string]any)["embedding"].([]any)
	vb := db[0].(map[string]any)["embedding"].([]any)
	if len(da) != 2 || len(va) != 8 {
		t.Fatalf("%d vectors of %d", len(da), len(va))
	}
	for i := range va {
		if va[i] != vb[i] {
			t.Fatal("embeddings differ")
		}
	}
}

func TestSessionTurnTwoSendsTurnOneUpstream(t *testing.T) {
	c := openCore(t)
	s, err := c.Session("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, err := s.Chat(user("my name is Ada")); err != nil || content(t, a) != "fake reply to: my name is Ada" {
		t.Fatal(a, err)
	}
	if _, err := s.Chat(user("what is my name?")); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range lastUpstreamMessages(t) {
		s, _ := m["content"].(string)
		texts = append(texts, s)
	}
	joined := strings.Join(texts, "|")
	if !strings.Contains(joined, "my name is Ada|fake reply to: my name is Ada") || texts[len(texts)-1] != "what is my name?" {
		t.Fatalf("upstream saw %q", texts)
	}
	msgs, err := s.Messages(nil)
	if err != nil || len(msgs) != 4 {
		t.Fatal(len(msgs), err)
	}
}

func TestSessionStreamedTurnIsStored(t *testing.T) {
	c := openCore(t)
	s, err := c.Session("", Object{"title": "streams"})
	if err != nil {
		t.Fatal(err)
	}
	st := s.ChatChan(user("streamed turn"))
	n := 0
	for range st.C {
		n++
	}
	a, err := st.Result()
	if err != nil || n < 3 || content(t, a) != "fake reply to: streamed turn" {
		t.Fatal(n, a, err)
	}
	if msgs, err := s.Messages(nil); err != nil || len(msgs) != 2 {
		t.Fatal(len(msgs), err)
	}
}

func TestSessionsListGetUpdateDelete(t *testing.T) {
	c := openCore(t)
	s, err := c.Session("", Object{"title": "first"})
	if err != nil {
		t.Fatal(err)
	}
	id := s.ID()
	if _, err := s.Chat(user("hi")); err != nil {
		t.Fatal(err)
	}
	f, err := s.Fork(0)
	if err != nil || f.ID() == id {
		t.Fatal(err)
	}
	s.Close()
	list, err := c.Sessions(nil)
	if err != nil || len(list) != 2 {
		t.Fatal(list, err)
	}
	if err := c.UpdateSession("", id, Object{"title": "renamed"}); err != nil {
		t.Fatal(err)
	}
	info, err := c.SessionInfo("", id)
	if err != nil || info["title"] != "renamed" {
		t.Fatal(info, err)
	}
	if _, err := c.ExportSession("", id); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSession("", id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SessionInfo("", id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.PruneSessions(3600); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigIsInvalidArgumentNamingThePath(t *testing.T) {
	cfg := fakeConfig()
	cfg["providers"].(Object)["fake"].(Object)["bse_url"] = "x"
	_, err := Open(cfg)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrInvalidArgument) || e.Code != AC_EINVAL {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(e.Message, "providers.fake") || !strings.Contains(e.Message, "bse_url") {
		t.Fatalf("message %q", e.Message)
	}
}

func TestUnknownModelIsNotFound(t *testing.T) {
	c := openCore(t)
	_, err := c.Chat(Object{"model": "no-such-model", "messages": []Object{{"role": "user", "content": "x"}}})
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || !strings.Contains(e.Message, "no-such-model") {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, ErrInvalidArgument) {
		t.Fatal("matched the wrong sentinel")
	}
}

func TestEveryStatusCodeHasASentinel(t *testing.T) {
	seen := map[int]bool{}
	for _, s := range sentinels {
		seen[s.Code] = true
		if StatusName(s.Code) == "AC_E?" {
			t.Fatalf("sentinel for unknown code %d", s.Code)
		}
	}
	for code := -1; StatusName(code) != "AC_E?"; code-- {
		if !seen[code] {
			t.Fatalf("no sentinel for %s", StatusName(code))
		}
	}
}

func TestCloseIsIdempotentAndTheCoreClosesItsChildren(t *testing.T) {
	c, err := Open(fakeConfig())
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Session("", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Router(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close()
	s.Close()
	r.Close()
	if _, err := s.Chat(user("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Chat(user("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("err = %v", err)
	}
}

func TestSetLogReceivesMessages(t *testing.T) {
	c := openCore(t)
	var lines []string
	if err := c.SetLog(AC_LOG_DEBUG, func(level int, msg string) { lines = append(lines, msg) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Chat(user("log me")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetLog(AC_LOG_ERROR, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRouterRoutesAndChats(t *testing.T) {
	c := openCore(t)
	r, err := c.Router(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Route(user("where to?")); err != nil {
		t.Fatal(err)
	}
	if a, err := r.Chat(user("routed")); err != nil || content(t, a) != "fake reply to: routed" {
		t.Fatal(a, err)
	}
	if _, err := r.Health(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Usage(nil); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Metrics(); err != nil || m == "" {
		t.Fatal(err)
	}
}

func TestStoreSearchFindsTheAddedDocument(t *testing.T) {
	c := openCore(t)
	kb, err := c.Store("kb", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	id, err := kb.Add(Object{"text": "The capital of France is Paris.", "title": "france"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kb.Add(Object{"text": "Bananas are yellow and rich in potassium.", "title": "fruit"}); err != nil {
		t.Fatal(err)
	}
	if n, err := kb.Count(); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	found, err := kb.Search("capital of France", Object{"k": 1})
	if err != nil {
		t.Fatal(err)
	}
	res := found["results"].([]any)
	first := res[0].(map[string]any)
	if first["document_id"] != id || !strings.Contains(first["text"].(string), "Paris") {
		t.Fatalf("results %v", res)
	}
	if err := kb.Delete(id); err != nil {
		t.Fatal(err)
	}
	if err := kb.Delete(id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestAsyncCallbackPanicIsRaisedByRun(t *testing.T) {
	c := openCore(t)
	if _, err := c.ChatAsync(user("later"), nil, func(Object, error) { panic("in done") }); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != "in done" {
			t.Fatalf("recovered %v", r)
		}
		if a, err := c.Chat(user("usable")); err != nil || content(t, a) != "fake reply to: usable" {
			t.Fatal(a, err)
		}
	}()
	_ = c.Run()
	t.Fatal("no panic")
}

func TestSessionChatAsyncStreamsAndCompletes(t *testing.T) {
	c := openCore(t)
	s, err := c.Session("", nil)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []Object
	var got Object
	if _, err := s.ChatAsync(user("async turn"), func(ch Object) error {
		chunks = append(chunks, ch)
		return nil
	}, func(a Object, err error) {
		if err != nil {
			t.Error(err)
		}
		got = a
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	if deltaText(chunks) != "fake reply to: async turn" || content(t, got) != deltaText(chunks) {
		t.Fatalf("streamed %q", deltaText(chunks))
	}
}

func TestAttachedStorePutsTheDocumentIntoThePrompt(t *testing.T) {
	c := openCore(t)
	kb, err := c.Store("facts", nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := kb.Add(Object{"text": "The secret code word is pineapple.", "title": "code"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kb.Add(Object{"text": "Elephants are the largest land animals."}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Session("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AttachStore(kb); err != nil {
		t.Fatal(err)
	}
	answer, err := s.Chat(user("What is the secret code word?"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range lastUpstreamMessages(t) {
		if str, _ := m["content"].(string); strings.Contains(str, "pineapple") {
			found = true
		}
	}
	if !found {
		t.Fatal("the document did not reach the upstream request")
	}
	cites, _ := answer["agentcore"].(map[string]any)["citations"].([]any)
	if len(cites) == 0 || cites[0].(map[string]any)["document_id"] != doc {
		t.Fatalf("citations %v", cites)
	}
	if err := s.DetachStore(kb); err != nil {
		t.Fatal(err)
	}
	if err := s.DetachStore(kb); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if err := s.AttachStore(kb); err != nil {
		t.Fatal(err)
	}
	kb.Close() // detaches first
	if a, err := s.Chat(user("still fine?")); err != nil || content(t, a) != "fake reply to: still fine?" {
		t.Fatal(a, err)
	}
}
