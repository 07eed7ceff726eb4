package blobio

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The kinds of failure a remote source reports. Every error from Open and ReadAt of a remote
// source wraps exactly one of these (or ErrChanged), so callers can decide with errors.Is what
// to tell the user: a wrong URL, a missing permission, a network problem or a replaced image
// each need a different fix.
var (
	// ErrNotFound: the container or blob does not exist (Azure also answers 404 to anonymous
	// requests for a private blob, so it can mean "not public" too).
	ErrNotFound = errors.New("not found")
	// ErrAuth: the server refused the credential (401 or 403).
	ErrAuth = errors.New("access refused")
	// ErrUnreachable: the server could not be reached or kept failing (connection errors,
	// timeouts, 408, 429 and 5xx) until the retries and the time budget were spent.
	ErrUnreachable = errors.New("storage unreachable")
	// ErrBadResponse: the server answered something a range source cannot use (no Range
	// support, a Content-Range that does not match the request).
	ErrBadResponse = errors.New("unusable response")
	// ErrDiskCache: the disk cache directory cannot be used (not writable, too little space).
	ErrDiskCache = errors.New("disk cache")
)

// Error describes a failed operation on a remote source. It never holds secrets: Source is the
// redacted location and Err has been through Redact.
type Error struct {
	Op     string // "open", "read", "upload", ...
	Source string // redacted location
	Kind   error  // ErrNotFound, ErrAuth, ErrUnreachable, ErrChanged or ErrBadResponse
	Status int    // HTTP status of the last answer, 0 for transport errors
	Code   string // service error code (x-ms-error-code), if any
	Tries  int
	Took   time.Duration
	Err    error // the last underlying error, already redacted
	// Cause is what the source found out about why, from the answer and the request ("the SAS
	// expired at ..."), when it knows more than Kind says. What the user should do about it,
	// in terms of encfs's flags, is the command line's business (cmd/encfs, advice.go).
	Cause string
	// Azure is set when the source is Azure Blob Storage (the advice differs).
	Azure bool
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %v", e.Op, e.Source, e.Kind)
	if e.Status != 0 || e.Code != "" {
		b.WriteString(" (")
		if e.Status != 0 {
			fmt.Fprintf(&b, "HTTP %d", e.Status)
		}
		if e.Code != "" {
			if e.Status != 0 {
				b.WriteString(" ")
			}
			b.WriteString(e.Code)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Tries > 1 {
		fmt.Fprintf(&b, " (after %d tries in %s)", e.Tries, e.Took.Round(time.Millisecond))
	}
	if e.Cause != "" {
		b.WriteString("; ")
		b.WriteString(e.Cause)
	}
	return b.String()
}

// Unwrap exposes both the kind and the underlying cause to errors.Is and errors.As, except a
// cause that is an end of file. A connection closed before the answer was complete ends in
// io.EOF or io.ErrUnexpectedEOF deep in the transport; a reader that took the failed read for
// the end of the image would return a short read as success, and the kernel would take the
// file for shorter than it is. A storage failure is never an end of file.
func (e *Error) Unwrap() []error {
	if e.Err == nil || errors.Is(e.Err, io.EOF) || errors.Is(e.Err, io.ErrUnexpectedEOF) {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}
