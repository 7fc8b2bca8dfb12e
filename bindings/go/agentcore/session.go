package agentcore

/*
#include <agentcore.h>
*/
import "C"

import "runtime/cgo"

// Session is a conversation with memory (ac_session).
type Session struct {
	core   *Core
	s      *C.ac_session
	stores map[*Store]struct{} // attached; detached when either is closed
}

// Session opens a conversation session (ac_session_open): id "" creates a
// new one; opts (nil for none) is the options object of docs/sessions.md,
// for example {"create": true, "tenant": "t1"}.
func (c *Core) Session(id string, opts any) (*Session, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	o, err := jsonArg(opts)
	if err != nil {
		return nil, err
	}
	s, err := acSessionOpen(h, id, o)
	if err != nil {
		return nil, err
	}
	return c.newSession(s), nil
}

func (c *Core) newSession(s *C.ac_session) *Session {
	sess := &Session{core: c, s: s}
	c.adopt(sess)
	return sess
}

// Close closes the session handle; the stored session stays. Closing twice
// does nothing.
func (s *Session) Close() {
	if s == nil || s.s == nil {
		return
	}
	for st := range s.stores {
		delete(st.sessions, s)
	}
	s.stores = nil
	acSessionClose(s.s)
	s.s = nil
	s.core.disown(s)
}

// AttachStore makes every turn search store and put what fits into the
// prompt (ac_session_attach_store). Closing the store detaches it first.
func (s *Session) AttachStore(store *Store) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	sh, err := store.handle()
	if err != nil {
		return err
	}
	if err := acSessionAttachStore(h, sh); err != nil {
		return err
	}
	if s.stores == nil {
		s.stores = map[*Store]struct{}{}
	}
	s.stores[store] = struct{}{}
	if store.sessions == nil {
		store.sessions = map[*Session]struct{}{}
	}
	store.sessions[s] = struct{}{}
	return nil
}

// DetachStore stops searching store (ac_session_detach_store).
func (s *Session) DetachStore(store *Store) error {
	h, err := s.handle()
	if err != nil {
		return err
	}
	sh, err := store.handle()
	if err != nil {
		return err
	}
	if err := acSessionDetachStore(h, sh); err != nil {
		return err
	}
	delete(s.stores, store)
	delete(store.sessions, s)
	return nil
}

func (s *Session) handle() (*C.ac_session, error) {
	if s == nil || s.s == nil {
		return nil, errClosed("session")
	}
	return s.s, nil
}

// ID returns the session's id ("" once closed).
func (s *Session) ID() string {
	if s == nil || s.s == nil {
		return ""
	}
	return acSessionID(s.s)
}

// Chat runs one turn (ac_session_chat): request holds only the new
// message(s); the library adds the history, knowledge and tools.
func (s *Session) Chat(request any) (Object, error) {
	return s.ChatStream(request, nil)
}

// ChatStream is Chat with streaming, as Core.ChatStream.
func (s *Session) ChatStream(request any, fn func(chunk Object) error) (Object, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	return streamCall(request, fn, func(req string, ud cgo.Handle) (string, error) {
		return acSessionChat(h, req, ud)
	})
}

// ChatChan streams one turn through a channel.
func (s *Session) ChatChan(request any) *Stream {
	return newStream(func(fn func(Object) error) (Object, error) { return s.ChatStream(request, fn) })
}

// ChatAsync starts a turn without waiting (ac_session_chat_async).
func (s *Session) ChatAsync(request any, stream func(chunk Object) error, done func(Object, error)) (*Call, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	return startAsync(s.core, request, stream, done, func(req string, ud cgo.Handle) (*C.ac_call, error) {
		return acSessionChatAsync(h, req, ud)
	})
}

// Messages returns the stored messages, oldest first
// (ac_session_messages); opts may be nil or {"after": seq, "limit": n}.
func (s *Session) Messages(opts any) ([]Object, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	o, err := jsonArg(opts)
	if err != nil {
		return nil, err
	}
	return decode[[]Object](acSessionMessages(h, o))
}

// Fork makes a new session holding this one's messages up to atSeq (0 =
// all), ac_session_fork.
func (s *Session) Fork(atSeq int64) (*Session, error) {
	h, err := s.handle()
	if err != nil {
		return nil, err
	}
	f, err := acSessionFork(h, atSeq)
	if err != nil {
		return nil, err
	}
	return s.core.newSession(f), nil
}

// Sessions lists a tenant's sessions, newest first (ac_sessions_list).
func (c *Core) Sessions(query any) ([]Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	q, err := jsonArg(query)
	if err != nil {
		return nil, err
	}
	return decode[[]Object](acSessionsList(h, q))
}

// SessionInfo returns one session's metadata (ac_sessions_get); tenant ""
// is "default".
func (c *Core) SessionInfo(tenant, id string) (Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	return decode[Object](acSessionsGet(h, tenant, id))
}

// ExportSession returns a session's metadata and messages
// (ac_sessions_export).
func (c *Core) ExportSession(tenant, id string) (Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	return decode[Object](acSessionsExport(h, tenant, id))
}

// UpdateSession changes a session's title, tags or metadata
// (ac_sessions_update).
func (c *Core) UpdateSession(tenant, id string, patch any) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	p, err := jsonArg(patch)
	if err != nil {
		return err
	}
	return acSessionsUpdate(h, tenant, id, p)
}

// DeleteSession deletes a session and its messages (ac_sessions_delete).
func (c *Core) DeleteSession(tenant, id string) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return acSessionsDelete(h, tenant, id)
}

// PruneSessions deletes every session idle for longer than idleSeconds and
// returns how many were deleted (ac_sessions_prune).
func (c *Core) PruneSessions(idleSeconds int64) (int64, error) {
	h, err := c.handle()
	if err != nil {
		return 0, err
	}
	return acSessionsPrune(h, idleSeconds)
}
