package agentcore

/*
#include <agentcore.h>
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/cgo"
	"sync"
)

// streamCall runs one synchronous call that takes an ac_stream_fn: fn (when
// not nil) receives every chunk; its error stops the call, which then fails
// with AC_EUSER, and both errors are returned (errors.Is finds either).
func streamCall(request any, fn func(Object) error, call func(req string, ud cgo.Handle) (string, error)) (Object, error) {
	req, err := jsonArg(request)
	if err != nil {
		return nil, err
	}
	var ud cgo.Handle
	var set *callbackSet
	var fnErr error
	if fn != nil {
		set = &callbackSet{stream: func(chunk string) int {
			var obj Object
			if err := json.Unmarshal([]byte(chunk), &obj); err != nil {
				fnErr = fmt.Errorf("agentcore: decoding a stream chunk: %w", err)
				return 1
			}
			if err := fn(obj); err != nil {
				fnErr = err
				return 1
			}
			return 0
		}}
		ud = cgo.NewHandle(set)
		defer ud.Delete()
	}
	out, err := call(req, ud)
	if set != nil && set.panicked != nil {
		panic(set.panicked)
	}
	if fnErr != nil {
		if err == nil {
			return nil, fnErr
		}
		return nil, fmt.Errorf("%w: %w", err, fnErr)
	}
	return decode[Object](out, err)
}

// errStreamClosed is what the chunk callback of a closed Stream returns.
var errStreamClosed = errors.New("agentcore: stream closed by the receiver")

// Stream is a streamed answer delivered through a channel: range over C for
// the chunks, then call Result for the assembled answer. The call runs in
// its own goroutine; the Core and its handles must not be used by another
// goroutine until C is closed.
type Stream struct {
	// C receives every chunk; it is closed when the call has ended.
	C <-chan Object

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	resp     Object
	err      error
}

func newStream(run func(fn func(Object) error) (Object, error)) *Stream {
	ch := make(chan Object)
	s := &Stream{C: ch, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(ch)
		s.resp, s.err = run(func(chunk Object) error {
			select {
			case ch <- chunk:
				return nil
			case <-s.stop:
				return errStreamClosed
			}
		})
	}()
	return s
}

// Result waits for the end of the call and returns the assembled answer.
func (s *Stream) Result() (Object, error) {
	<-s.done
	return s.resp, s.err
}

// Close stops the call if it is still running (the library then fails it
// with AC_EUSER) and waits for its end. It returns nil when the answer was
// complete.
func (s *Stream) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	if s.err != nil && errors.Is(s.err, errStreamClosed) {
		return nil
	}
	return s.err
}

// Call is an asynchronous call in flight (ac_call); it is valid until its
// done function has run.
type Call struct {
	c    *C.ac_call
	ud   cgo.Handle
	mu   sync.Mutex
	over bool
}

// Cancel cancels the call if it has not completed (ac_call_cancel): its
// done function then runs with ErrCancelled. Cancelling a completed call
// does nothing.
func (c *Call) Cancel() {
	c.mu.Lock()
	p, over := c.c, c.over
	c.mu.Unlock()
	if !over && p != nil {
		acCallCancel(p)
	}
}

// startAsync starts a call with an ac_done_fn (and an optional stream sink).
// A panic in stream or done is recovered in the trampoline and raised again
// by the Core's Run once the library has returned.
func startAsync(core *Core, request any, stream func(Object) error, done func(Object, error),
	start func(req string, ud cgo.Handle) (*C.ac_call, error)) (*Call, error) {
	req, err := jsonArg(request)
	if err != nil {
		return nil, err
	}
	call := &Call{}
	set := &callbackSet{}
	if stream != nil {
		set.stream = func(chunk string) int {
			var obj Object
			if json.Unmarshal([]byte(chunk), &obj) != nil || stream(obj) != nil {
				return 1
			}
			return 0
		}
	}
	set.done = func(status int, response string, errmsg string) {
		call.mu.Lock()
		call.over = true
		call.c = nil
		call.mu.Unlock()
		defer call.ud.Delete()
		defer core.keepPanic(set)
		if done == nil {
			return
		}
		if status != AC_OK {
			done(nil, newError(status, errmsg))
			return
		}
		done(decode[Object](response, nil))
	}
	call.ud = cgo.NewHandle(set)
	p, err := start(req, call.ud)
	if err != nil {
		call.ud.Delete()
		return nil, err
	}
	call.mu.Lock()
	if !call.over {
		call.c = p
	}
	call.mu.Unlock()
	return call, nil
}

// keepPanic records a panic recovered in an asynchronous call's callbacks
// (set.panicked, or one raised by the done function itself, which runs
// before the trampoline's own recover) for Run to raise again.
func (c *Core) keepPanic(set *callbackSet) {
	if r := recover(); r != nil {
		set.panicked = r
	}
	if set.panicked != nil {
		c.mu.Lock()
		if c.panicked == nil {
			c.panicked = set.panicked
		}
		c.mu.Unlock()
	}
}
