package blobio

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/encfs/encfs/internal/retry"
)

// attemptError is what one try reports to the retry loop.
type attemptError struct {
	kind       error         // classification if final
	status     int           // HTTP status, 0 for transport errors
	code       string        // service error code
	retryable  bool          //
	retryAfter time.Duration // server's Retry-After, 0 if none
	err        error         // redacted cause
}

func (a *attemptError) Error() string {
	if a.err == nil {
		return a.kind.Error()
	}
	return a.err.Error()
}

// retrier runs the tries of one source's operations under its retry policy, shared by the
// Azure and HTTP sources so both behave the same and count retries in one place. retries, if
// not nil, counts the retried tries.
type retrier struct {
	policy retry.Policy
	source string // redacted, for errors
	azure  bool
}

func newRetrier(p retry.Policy, retries *atomic.Int64, source string, azure bool) retrier {
	p = p.WithDefaults()
	if retries != nil {
		p.OnRetry = func() { retries.Add(1) }
	}
	return retrier{policy: p, source: source, azure: azure}
}

// do runs try until it succeeds, fails permanently, or the time runs out: the earlier of the
// context's deadline (a reader's) and the policy's budget. try gets a context bounded by the
// policy's per-try timeout, and returns nil or an *attemptError. A failure comes back as an
// *Error; a context that ended first comes back as its own error.
func (r *retrier) do(ctx context.Context, op string, try func(ctx context.Context) *attemptError) error {
	var last *attemptError
	res, err := r.policy.Do(ctx, func(ctx context.Context) error {
		last = try(ctx)
		switch {
		case last == nil:
			return nil
		case last.retryable:
			return retry.Transient(last, last.retryAfter)
		default:
			return last
		}
	})
	switch {
	case err == nil:
		return nil
	case last == nil || errors.Is(err, context.Canceled):
		return err // the caller gave up: nothing to say about the storage
	}
	// err is the last failure (permanent, or passing with no time left for another try), or
	// the caller's deadline, which came during a try or a wait: either way, report the storage
	// failure behind it.
	kind := last.kind
	if kind == nil {
		kind = ErrUnreachable
	}
	hint := hintFor(kind, r.azure)
	switch {
	case kind == ErrUnreachable && (last.status == http.StatusTooManyRequests || last.status == http.StatusServiceUnavailable):
		hint = "the storage service is throttling requests; lower the parallelism or retry later"
	case kind == ErrUnreachable && last.status >= 500:
		hint = "the storage service is failing; retry later"
	}
	return &Error{Op: op, Source: r.source, Kind: kind, Status: last.status, Code: last.code,
		Tries: res.Tries, Took: res.Took, Err: last.err, Hint: hint}
}

// classifyStatus turns an HTTP answer into an attempt error.
func classifyStatus(status int, code string, h http.Header, err error) *attemptError {
	a := &attemptError{status: status, code: code, err: redactErr(err)}
	switch {
	case status == http.StatusNotFound:
		a.kind = ErrNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		a.kind = ErrAuth
	case status == http.StatusPreconditionFailed:
		a.kind = ErrChanged
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		a.kind = ErrUnreachable
		a.retryable = true
		a.retryAfter = retry.After(h, time.Now())
	default:
		a.kind = ErrBadResponse
	}
	return a
}

// classifyTransport turns an error without an HTTP answer (dial, reset, timeout, truncated
// body) into an attempt error. They are all worth retrying: the time budget bounds the total.
func classifyTransport(err error) *attemptError {
	return &attemptError{kind: ErrUnreachable, retryable: isTransient(err), err: redactErr(err)}
}

func isTransient(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED), errors.As(err, &ne):
		return true
	}
	// The HTTP stack wraps some of these in plain strings.
	s := err.Error()
	for _, m := range []string{"connection reset", "broken pipe", "EOF", "timeout", "server closed", "transport connection broken"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}
