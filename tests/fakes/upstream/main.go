// Command fake-upstream is a deterministic stand-in for LLM providers
// (OpenAI-compatible, Anthropic Messages, Gemini, Ollama embeddings) used by
// the libagentcore tests and benchmarks. It listens on loopback, prints
// "LISTENING <port>" on stdout and answers every request as a pure function
// of what it is sent, unless told to misbehave (see faults.go).
//
//	fake-upstream [--port N] [--host 127.0.0.1] [--fixed] [--exit-on-stdin-eof] [--log FILE]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

type options struct {
	host      string
	port      int
	fixed     bool
	exitOnEOF bool
	logFile   string
}

func parseArgs(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fake-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&o.port, "port", 0, "port to listen on (0 = any free port)")
	fs.BoolVar(&o.fixed, "fixed", false, "fixed-answer benchmark mode (raw HTTP/1.1 server)")
	fs.BoolVar(&o.exitOnEOF, "exit-on-stdin-eof", false, "exit when stdin reaches end of file")
	fs.StringVar(&o.logFile, "log", "", "append a line per request to FILE")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.port < 0 || o.port > 65535 {
		return o, fmt.Errorf("bad --port %d", o.port)
	}
	return o, nil
}

// run starts the server and blocks until a signal arrives, stdin reaches EOF
// (with --exit-on-stdin-eof), stop is closed, or the server fails.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, stop <-chan struct{}) error {
	o, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	logger := log.New(io.Discard, "", 0)
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		logger = log.New(f, "", log.LstdFlags|log.Lmicroseconds)
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	var shutdown func()
	if o.fixed {
		fx := newFixedServer()
		go func() { serveErr <- fx.Serve(ln) }()
		shutdown = fx.Close
		logger.Printf("fixed mode on %s", ln.Addr())
	} else {
		srv := &http.Server{
			Handler:           newServer(logger),
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          logger,
		}
		go func() { serveErr <- srv.Serve(ln) }()
		shutdown = func() { srv.Close() }
		logger.Printf("normal mode on %s", ln.Addr())
	}

	// os.Stdout is unbuffered: the line is on its way when Fprintf returns.
	if _, err := fmt.Fprintf(stdout, "LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port); err != nil {
		shutdown()
		return err
	}
	if f, ok := stdout.(interface{ Flush() error }); ok {
		f.Flush()
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	eof := make(chan struct{})
	if o.exitOnEOF {
		go func() {
			io.Copy(io.Discard, stdin) // returns on EOF or on any read error
			close(eof)
		}()
	}

	select {
	case <-sig:
	case <-eof:
	case <-stop:
	case err := <-serveErr:
		shutdown()
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
	shutdown()
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "fake-upstream:", err)
		os.Exit(2)
	}
}
