package agentcore

/*
#include <agentcore.h>
*/
import "C"

import (
	"fmt"
	"runtime"
)

// Error is a failure reported by libagentcore: Code is the AC_E* status and
// Message the library's message for it (ac_errmsg()). errors.Is matches an
// *Error against the sentinel of its code, for example:
//
//	if errors.Is(err, agentcore.ErrNotFound) { ... }
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return acStrerror(e.Code)
	}
	return acStrerror(e.Code) + ": " + e.Message
}

// Is reports whether target is the sentinel (an *Error without a message)
// of e's code, or an *Error with the same code and message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Sentinel errors, one per status code, for errors.Is.
var (
	ErrInvalidArgument = &Error{Code: AC_EINVAL}
	ErrNoMemory        = &Error{Code: AC_ENOMEM}
	ErrNotFound        = &Error{Code: AC_ENOTFOUND}
	ErrIO              = &Error{Code: AC_EIO}
	ErrStorage         = &Error{Code: AC_ESTORAGE}
	ErrProvider        = &Error{Code: AC_EPROVIDER}
	ErrAuth            = &Error{Code: AC_EAUTH}
	ErrTimeout         = &Error{Code: AC_ETIMEOUT}
	ErrRateLimited     = &Error{Code: AC_ERATELIMIT}
	ErrContextOverflow = &Error{Code: AC_ECONTEXT}
	ErrBudgetExhausted = &Error{Code: AC_EBUDGET}
	ErrToolFailed      = &Error{Code: AC_ETOOL}
	ErrCancelled       = &Error{Code: AC_ECANCELLED}
	ErrBusy            = &Error{Code: AC_EBUSY}
	ErrUnsupported     = &Error{Code: AC_EUNSUPPORTED}
	ErrUserAbort       = &Error{Code: AC_EUSER}
)

// sentinels lists the sentinel errors, one per status code.
var sentinels = []*Error{
	ErrInvalidArgument, ErrNoMemory, ErrNotFound, ErrIO, ErrStorage, ErrProvider,
	ErrAuth, ErrTimeout, ErrRateLimited, ErrContextOverflow, ErrBudgetExhausted,
	ErrToolFailed, ErrCancelled, ErrBusy, ErrUnsupported, ErrUserAbort,
}

// newError maps a status code and message to an error: nil for AC_OK. It is
// the one place where codes become Go errors.
func newError(code int, message string) error {
	if code >= AC_OK {
		return nil
	}
	return &Error{Code: code, Message: message}
}

// ccall runs one C call that returns a status and, when it failed, reads
// this thread's ac_errmsg() before anything else can run on the thread: the
// goroutine is locked to its OS thread around the call and the read.
func ccall(f func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := int(f())
	if rc >= AC_OK {
		return nil
	}
	return newError(rc, acErrmsg())
}

// StatusName returns the name of a status code, for example "AC_ETIMEOUT".
func StatusName(code int) string {
	return acStrerror(code)
}

// Version returns the run-time version of the library, "MAJOR.MINOR.PATCH".
func Version() string {
	return acVersion()
}

// VersionNumber returns the run-time version as MAJOR*10000+MINOR*100+PATCH.
func VersionNumber() int {
	return acVersionNumber()
}

// errClosed is returned by methods of a closed handle.
func errClosed(what string) error {
	return &Error{Code: AC_EINVAL, Message: fmt.Sprintf("%s is closed", what)}
}
