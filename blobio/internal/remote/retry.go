// Package remote is what the remote sources (blobio/azure, blobio/httpsrc) share: the error
// one try reports (Attempt), the retry loop that turns the last failure into a *blobio.Error
// (Retrier), the classification of HTTP answers and transport errors, ranged reads that resume
// after a body cut short (ReadRanged), and one HTTP connection pool for the process.
package remote

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

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/internal/redact"
	"github.com/encfs/encfs/internal/retry"
)

// Attempt is what one try reports to the retry loop.
type Attempt struct {
	Kind       error         // classification if final: one of blobio's kinds
	Status     int           // HTTP status, 0 for transport errors
	Code       string        // service error code
	Retryable  bool          // another try may succeed
	RetryAfter time.Duration // server's Retry-After, 0 if none
	Err        error         // redacted cause
}

func (a *Attempt) Error() string {
	if a.Err == nil {
		return a.Kind.Error()
	}
	return a.Err.Error()
}

// Retrier runs the tries of one source's operations under its retry policy, shared by the
// Azure and HTTP sources so both behave the same and count retries in one place.
type Retrier struct {
	Policy retry.Policy // with defaults filled in
	source string       // redacted, for errors
	azure  bool
}

// NewRetrier returns the retrier of the source named source (redacted); retries, if not nil,
// counts the retried tries. azure marks its errors as Azure Blob Storage's.
func NewRetrier(p retry.Policy, retries *atomic.Int64, source string, azure bool) Retrier {
	p = p.WithDefaults()
	if retries != nil {
		p.OnRetry = func() { retries.Add(1) }
	}
	return Retrier{Policy: p, source: source, azure: azure}
}

// Do runs try until it succeeds, fails permanently, or the time runs out: the earlier of the
// context's deadline (a reader's) and the policy's budget. try gets a context bounded by the
// policy's per-try timeout, and returns nil or an *Attempt. A failure comes back as a
// *blobio.Error; a context that ended first comes back as its own error.
func (r *Retrier) Do(ctx context.Context, op string, try func(ctx context.Context) *Attempt) error {
	// last is the failure to report. A try that the operation's deadline cut short (rather
	// than the per-try timeout) learned nothing about the storage, so the failure before it,
	// which did, stays the one reported: "HTTP 500" says more than "deadline exceeded".
	// (The deadline is taken before Do takes its own, so it is not later than Do's.)
	var last *Attempt
	deadline := r.Policy.Deadline(ctx, time.Now())
	res, err := r.Policy.Do(ctx, func(ctx context.Context) error {
		a := try(ctx)
		cut := ctx.Err() != nil && !time.Now().Before(deadline)
		if a == nil || last == nil || !cut {
			last = a
		}
		switch {
		case a == nil:
			return nil
		case a.Retryable:
			return retry.Transient(a, a.RetryAfter)
		default:
			return a
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
	kind := last.Kind
	if kind == nil {
		kind = blobio.ErrUnreachable
	}
	cause := ""
	switch {
	case kind == blobio.ErrUnreachable && (last.Status == http.StatusTooManyRequests || last.Status == http.StatusServiceUnavailable):
		cause = "the storage service throttled the requests"
	case kind == blobio.ErrUnreachable && last.Status >= 500:
		cause = "the storage service kept failing"
	}
	return &blobio.Error{Op: op, Source: r.source, Kind: kind, Status: last.Status, Code: last.Code,
		Tries: res.Tries, Took: res.Took, Err: last.Err, Cause: cause, Azure: r.azure}
}

// ClassifyStatus turns an HTTP answer into an attempt error.
func ClassifyStatus(status int, code string, h http.Header, err error) *Attempt {
	a := &Attempt{Status: status, Code: code, Err: redact.Err(err)}
	switch {
	case status == http.StatusNotFound:
		a.Kind = blobio.ErrNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		a.Kind = blobio.ErrAuth
	case status == http.StatusPreconditionFailed:
		a.Kind = blobio.ErrChanged
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		a.Kind = blobio.ErrUnreachable
		a.Retryable = true
		a.RetryAfter = retry.After(h, time.Now())
	default:
		a.Kind = blobio.ErrBadResponse
	}
	return a
}

// ClassifyTransport turns an error without an HTTP answer (dial, reset, timeout, truncated
// body) into an attempt error. They are all worth retrying: the time budget bounds the total.
func ClassifyTransport(err error) *Attempt {
	return &Attempt{Kind: blobio.ErrUnreachable, Retryable: isTransient(err), Err: redact.Err(err)}
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
