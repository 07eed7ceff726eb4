// Package retry runs a network operation again after transient failures, the one retry engine
// of encfs (storage reads in blobio, attestation and certificate fetches in keys).
//
// A Policy is bounded by time, not by a count of tries: an operation is tried until it
// succeeds, fails permanently, or its deadline comes (the caller's context deadline, or Budget
// from the start, whichever is first). Waits between tries grow exponentially with jitter up to
// MaxDelay, and a server's Retry-After (in every form Azure sends, see After) replaces the
// backoff. Each try gets its own timeout, so one stalled connection cannot take the whole budget.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy bounds one operation. The zero value is usable: see the defaults on each field.
type Policy struct {
	// TryTimeout bounds one try, request and body (default 30s).
	TryTimeout time.Duration
	// BaseDelay is the first backoff (default 100ms); it doubles per retry up to MaxDelay
	// (default 4s), each wait drawn uniformly from [d/2, d] so that many clients retrying at
	// once spread out.
	BaseDelay, MaxDelay time.Duration
	// Budget bounds the whole operation from its start, waits included (default: none beyond
	// the context's deadline; with neither, 60s).
	Budget time.Duration
	// MaxTries stops after this many tries even with time left (default 0: no limit).
	MaxTries int
	// OnRetry, if set, is called before each wait for another try (for counters).
	OnRetry func()
}

// WithDefaults fills in the default of every field left zero.
func (p Policy) WithDefaults() Policy {
	if p.TryTimeout <= 0 {
		p.TryTimeout = 30 * time.Second
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 100 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 4 * time.Second
	}
	return p
}

// transientError marks a failure worth another try.
type transientError struct {
	err   error
	after time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Transient marks err as worth another try. after is the server's requested delay before the
// next try (0 when it asked for none).
func Transient(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err, after: after}
}

// IsTransient reports whether err was marked by Transient: for the error Do returns, that the
// operation ran out of time (or tries) while the failure still looked passing.
func IsTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// Result says how an operation went.
type Result struct {
	Tries int
	Took  time.Duration
}

// Do runs try until it returns nil, returns an error not marked Transient, or the policy's
// deadline leaves no room for another try. try gets a context bounded by TryTimeout and the
// deadline. Do returns try's last error as it was (still marked if it was transient), or the
// context's error if the caller's context ended first.
func (p Policy) Do(ctx context.Context, try func(ctx context.Context) error) (Result, error) {
	p = p.WithDefaults()
	start := time.Now()
	deadline := p.Deadline(ctx, start)
	res := Result{}
	for {
		res.Tries++
		tctx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(p.TryTimeout)))
		err := try(tctx)
		cancel()
		res.Took = time.Since(start)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			// The caller gave up or its deadline came: report that, not the last failure.
			return res, ctx.Err()
		}
		var t *transientError
		if !errors.As(err, &t) || (p.MaxTries > 0 && res.Tries >= p.MaxTries) {
			return res, err
		}
		wait := p.backoff(res.Tries)
		if t.after > 0 {
			wait = t.after
		}
		if !time.Now().Add(wait).Before(deadline) {
			// No time for another try: waiting would only delay the same answer.
			return res, err
		}
		if p.OnRetry != nil {
			p.OnRetry()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			res.Took = time.Since(start)
			return res, ctx.Err()
		case <-timer.C:
		}
	}
}

// Deadline is when an operation that starts at start must end: the earlier of the context's
// deadline and start+Budget; with neither, 60s.
func (p Policy) Deadline(ctx context.Context, start time.Time) time.Time {
	d, ok := ctx.Deadline()
	if p.Budget > 0 && (!ok || start.Add(p.Budget).Before(d)) {
		return start.Add(p.Budget)
	}
	if !ok {
		return start.Add(60 * time.Second)
	}
	return d
}

// backoff is the wait after the given number of tries: exponential, capped, with jitter.
func (p Policy) backoff(tries int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < tries && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	return d/2 + rand.N(d/2+1)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
