package agentcore

/*
#include <agentcore.h>
*/
import "C"

import "runtime/cgo"

// Router decides which model answers, retries and falls back (ac_router).
type Router struct {
	core *Core
	r    *C.ac_router
}

// Router opens a router (ac_router_open); opts nil means the config's
// "router" section.
func (c *Core) Router(opts any) (*Router, error) {
	h, err := c.handle()
	if err != nil {
		return nil, err
	}
	o, err := jsonArg(opts)
	if err != nil {
		return nil, err
	}
	r, err := acRouterOpen(h, o)
	if err != nil {
		return nil, err
	}
	rt := &Router{core: c, r: r}
	c.adopt(rt)
	return rt, nil
}

// Close closes the router; closing twice does nothing.
func (r *Router) Close() {
	if r == nil || r.r == nil {
		return
	}
	acRouterClose(r.r)
	r.r = nil
	r.core.disown(r)
}

func (r *Router) handle() (*C.ac_router, error) {
	if r == nil || r.r == nil {
		return nil, errClosed("router")
	}
	return r.r, nil
}

// Route decides without calling anything (ac_router_route, a dry run).
func (r *Router) Route(request any) (Object, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	req, err := jsonArg(request)
	if err != nil {
		return nil, err
	}
	return decode[Object](acRouterRoute(h, req))
}

// Chat routes and sends a chat request (ac_router_chat).
func (r *Router) Chat(request any) (Object, error) {
	return r.ChatStream(request, nil)
}

// ChatStream is Chat with streaming, as Core.ChatStream.
func (r *Router) ChatStream(request any, fn func(chunk Object) error) (Object, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	return streamCall(request, fn, func(req string, ud cgo.Handle) (string, error) {
		return acRouterChat(h, req, ud)
	})
}

// ChatChan streams a routed chat through a channel.
func (r *Router) ChatChan(request any) *Stream {
	return newStream(func(fn func(Object) error) (Object, error) { return r.ChatStream(request, fn) })
}

// ChatAsync starts a routed chat without waiting (ac_router_chat_async).
func (r *Router) ChatAsync(request any, stream func(chunk Object) error, done func(Object, error)) (*Call, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	return startAsync(r.core, request, stream, done, func(req string, ud cgo.Handle) (*C.ac_call, error) {
		return acRouterChatAsync(h, req, ud)
	})
}

// LastError returns the OpenAI-shaped error body of the router's most
// recent failed call (ac_router_last_error).
func (r *Router) LastError() (Object, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	return decode[Object](acRouterLastError(h))
}

// Health returns every model's health (ac_router_health).
func (r *Router) Health() (Object, error) {
	h, err := r.handle()
	if err != nil {
		return nil, err
	}
	return decode[Object](acRouterHealth(h))
}
