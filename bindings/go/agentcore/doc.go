// Package agentcore is the Go binding of libagentcore, an embeddable agent
// engine behind one chat-completions call.
//
// The low-level declarations (zz_generated*.go) are generated from
// include/agentcore.h by bindings/gen/gen.py; this package adds a thin
// idiomatic layer over them: handles with Close methods, errors as *Error
// (errors.Is with the Err* sentinels), JSON requests and answers as Go
// values, streaming through a callback or a channel, and tools written as
// Go functions.
//
// Requests and options are given as any value that encoding/json can
// marshal; a string, []byte or json.RawMessage is taken as JSON text as it
// is, and nil means "none" (NULL). Answers are decoded into Object
// (map[string]any) or []Object.
//
// Threading follows the C library: a Core and every handle made from it are
// used by one goroutine at a time. Callbacks (stream chunks, tools, logs,
// completions) run on the goroutine that made the call into the library.
// The build finds the library with pkg-config (package "agentcore").
package agentcore
