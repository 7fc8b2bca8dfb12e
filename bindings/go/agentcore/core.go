package agentcore

/*
#include <agentcore.h>
*/
import "C"

import (
	"runtime/cgo"
	"sync"
	"unsafe"
)

// child is a handle made from a Core; the Core closes what is still open
// when it is closed itself.
type child interface {
	Close()
}

// Core is an opened libagentcore core (ac_core).
type Core struct {
	c        *C.ac_core
	log      cgo.Handle
	mu       sync.Mutex // guards children and panicked
	children map[child]struct{}
	panicked any // a panic in an asynchronous call's callback, for Run
}

// Open opens a core with its own event loop (ac_core_open). config is the
// JSON configuration (see docs/config.md); nil means all defaults.
func Open(config any) (*Core, error) {
	cfg, err := jsonArg(config)
	if err != nil {
		return nil, err
	}
	c, err := acCoreOpen(cfg)
	if err != nil {
		return nil, err
	}
	return &Core{c: c, children: map[child]struct{}{}}, nil
}

// OpenOnLoop opens a core on a host's libuv loop (a uv_loop_t *) with
// ac_core_open_on_loop: only the asynchronous calls work on it.
func OpenOnLoop(config any, uvLoop unsafe.Pointer) (*Core, error) {
	cfg, err := jsonArg(config)
	if err != nil {
		return nil, err
	}
	c, err := acCoreOpenOnLoop(cfg, uvLoop)
	if err != nil {
		return nil, err
	}
	return &Core{c: c, children: map[child]struct{}{}}, nil
}

func (c *Core) adopt(ch child) {
	c.mu.Lock()
	c.children[ch] = struct{}{}
	c.mu.Unlock()
}

func (c *Core) disown(ch child) {
	c.mu.Lock()
	delete(c.children, ch)
	c.mu.Unlock()
}

// Close closes the handles made from the core that are still open, then
// the core (ac_core_close). Closing twice does nothing.
func (c *Core) Close() {
	if c == nil || c.c == nil {
		return
	}
	c.mu.Lock()
	kids := make([]child, 0, len(c.children))
	for k := range c.children {
		kids = append(kids, k)
	}
	c.mu.Unlock()
	// Sessions first: a store attached to a session must outlive it.
	for _, k := range kids {
		if _, ok := k.(*Session); ok {
			k.Close()
		}
	}
	for _, k := range kids {
		k.Close()
	}
	acCoreClose(c.c)
	c.c = nil
	if c.log != 0 {
		c.log.Delete()
		c.log = 0
	}
}

func (c *Core) handle() (*C.ac_core, error) {
	if c == nil || c.c == nil {
		return nil, errClosed("core")
	}
	return c.c, nil
}

// SetLog sets the log sink and the most verbose level passed to it
// (AC_LOG_ERROR .. AC_LOG_DEBUG); a nil fn turns logging off.
func (c *Core) SetLog(level int, fn func(level int, message string)) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	var ud cgo.Handle
	if fn != nil {
		ud = cgo.NewHandle(&callbackSet{log: fn})
	}
	if err := acCoreSetLog(h, level, ud); err != nil {
		if ud != 0 {
			ud.Delete()
		}
		return err
	}
	if c.log != 0 {
		c.log.Delete()
	}
	c.log = ud
	return nil
}

// Config returns the effective configuration (ac_core_config).
func (c *Core) Config() (Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	return decode[Object](acCoreConfig(h))
}

// Chat sends one stateless chat request (ac_chat) and returns the answer.
func (c *Core) Chat(request any) (Object, error) {
	return c.ChatStream(request, nil)
}

// ChatStream is Chat with streaming: fn receives every chunk as it arrives
// (a non-nil error from fn stops the call); the assembled answer is
// returned. A nil fn means no streaming.
func (c *Core) ChatStream(request any, fn func(chunk Object) error) (Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	return streamCall(request, fn, func(req string, ud cgo.Handle) (string, error) {
		return acChat(h, req, ud)
	})
}

// ChatChan streams a stateless chat request through a channel.
func (c *Core) ChatChan(request any) *Stream {
	return newStream(func(fn func(Object) error) (Object, error) { return c.ChatStream(request, fn) })
}

// ChatAsync starts a chat without waiting (ac_chat_async); done runs once
// when it completes, from inside Run (or on the host's loop). stream may be
// nil.
func (c *Core) ChatAsync(request any, stream func(chunk Object) error, done func(Object, error)) (*Call, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	return startAsync(c, request, stream, done, func(req string, ud cgo.Handle) (*C.ac_call, error) {
		return acChatAsync(h, req, ud)
	})
}

// Run runs the core's own loop until no asynchronous call is in flight
// (ac_core_run). A panic in a callback of an asynchronous call is raised
// again here, after the library has returned.
func (c *Core) Run() error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	err = acCoreRun(h)
	c.mu.Lock()
	p := c.panicked
	c.panicked = nil
	c.mu.Unlock()
	if p != nil {
		panic(p)
	}
	return err
}

// Embed computes embeddings (ac_embed): an OpenAI embeddings request in, an
// OpenAI embeddings response out.
func (c *Core) Embed(request any) (Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	req, err := jsonArg(request)
	if err != nil {
		return nil, err
	}
	return decode[Object](acEmbed(h, req))
}

// EmbedAsync starts Embed without waiting (ac_embed_async).
func (c *Core) EmbedAsync(request any, done func(Object, error)) (*Call, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	return startAsync(c, request, nil, done, func(req string, ud cgo.Handle) (*C.ac_call, error) {
		return acEmbedAsync(h, req, ud)
	})
}

// Usage aggregates the usage ledger (ac_core_usage); query may be nil.
func (c *Core) Usage(query any) (Object, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	q, err := jsonArg(query)
	if err != nil {
		return nil, err
	}
	return decode[Object](acCoreUsage(h, q))
}

// Metrics returns the core's metrics in the Prometheus text format
// (ac_core_metrics).
func (c *Core) Metrics() (string, error) {
	h, err := c.handle()
	if err != nil {
		return "", err
	}
	return acCoreMetrics(h)
}
