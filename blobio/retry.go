package blobio

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// RetryOptions bound how long a remote read may take. A read that cannot complete within
// MaxElapsed fails (wrapping ErrUnreachable) so that the mount can answer EIO for that read and
// keep serving others, instead of hanging the reader.
type RetryOptions struct {
	// MaxTries is the number of attempts per operation, the first included (default 8).
	MaxTries int
	// TryTimeout bounds one attempt, request and body (default 30s): a stalled connection is
	// abandoned and retried. Keep it above ChunkSize / worst acceptable throughput.
	TryTimeout time.Duration
	// BaseDelay is the first backoff (default 100ms); it doubles per retry, with full jitter,
	// up to MaxDelay (default 8s).
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxElapsed bounds the whole operation, backoffs and Retry-After waits included
	// (default 60s). A Retry-After that would overrun it fails the operation at once.
	MaxElapsed time.Duration
}

func (o RetryOptions) withDefaults() RetryOptions {
	if o.MaxTries <= 0 {
		o.MaxTries = 8
	}
	if o.TryTimeout <= 0 {
		o.TryTimeout = 30 * time.Second
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 8 * time.Second
	}
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = 60 * time.Second
	}
	return o
}

// attemptError is what one try reports to the retry loop.
type attemptError struct {
	kind       error         // classification if final
	status     int           // HTTP status, 0 for transport errors
	code       string        // service error code
	retryable  bool          //
	retryAfter time.Duration // server's Retry-After, 0 if none
	err        error         // redacted cause
}

func (a *attemptError) Error() string { return a.err.Error() }

// retrier runs attempts with backoff. It is shared by the Azure and HTTP sources so both
// behave the same and count retries in one place.
type retrier struct {
	opts    RetryOptions
	retries *atomic.Int64 // incremented per retry, may be nil
	source  string        // redacted, for errors
	azure   bool
}

// do runs try until it succeeds, fails permanently, or the budget is spent. try gets a context
// bounded by TryTimeout and the remaining budget, and returns nil or an *attemptError.
func (r *retrier) do(ctx context.Context, op string, try func(ctx context.Context) *attemptError) error {
	start := time.Now()
	deadline := start.Add(r.opts.MaxElapsed)
	var last *attemptError
	tries := 0
	for {
		tries++
		tctx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(r.opts.TryTimeout)))
		last = try(tctx)
		cancel()
		if last == nil {
			return nil
		}
		if ctx.Err() != nil {
			// The caller gave up; report that, not a storage failure.
			return ctx.Err()
		}
		if !last.retryable || tries >= r.opts.MaxTries {
			break
		}
		wait := backoff(r.opts, tries)
		if last.retryAfter > 0 {
			wait = last.retryAfter
		}
		if time.Now().Add(wait).After(deadline) {
			break
		}
		if r.retries != nil {
			r.retries.Add(1)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
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
		Tries: tries, Took: time.Since(start), Err: last.err, Hint: hint}
}

// backoff is exponential with full jitter: uniformly random in [d/2, d] where d doubles per
// try up to MaxDelay, so that many readers retrying at once spread out.
func backoff(o RetryOptions, tries int) time.Duration {
	d := o.BaseDelay
	for i := 1; i < tries && d < o.MaxDelay; i++ {
		d *= 2
	}
	if d > o.MaxDelay {
		d = o.MaxDelay
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
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
		a.retryAfter = retryAfter(h, time.Now())
	default:
		a.kind = ErrBadResponse
	}
	return a
}

// classifyTransport turns an error without an HTTP answer (dial, reset, timeout, truncated
// body) into an attempt error. They are all worth retrying: the budget bounds the total.
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

// maxRetryAfter caps a server's Retry-After so a hostile or confused server cannot park a
// reader; the MaxElapsed budget applies on top.
const maxRetryAfter = 5 * time.Minute

// retryAfter reads the server's requested delay: Azure's x-ms-retry-after-ms or retry-after-ms
// (milliseconds), then Retry-After as seconds or an HTTP date. Unparseable values give 0.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	for _, k := range []string{"x-ms-retry-after-ms", "retry-after-ms"} {
		if v := h.Get(k); v != "" {
			if d, ok := parseRetryAfterMillis(v); ok {
				return d
			}
		}
	}
	return ParseRetryAfter(h.Get("Retry-After"), now)
}

func parseRetryAfterMillis(v string) (time.Duration, bool) {
	ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || ms < 0 {
		return 0, false
	}
	if ms > int64(maxRetryAfter/time.Millisecond) {
		return maxRetryAfter, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// ParseRetryAfter parses an HTTP Retry-After value (delay-seconds or HTTP-date, RFC 9110
// 10.2.3) relative to now. It returns 0 for an empty, invalid or past value and caps the
// result at five minutes.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 {
			if err != nil && strings.Trim(v, "0123456789") == "" {
				return maxRetryAfter // a huge all-digit value overflowed
			}
			return 0
		}
		if s > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d < 0 {
		return 0
	}
	if d > maxRetryAfter {
		return maxRetryAfter
	}
	return d
}
