package blobio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// State is whether a source is serving.
type State int

const (
	// StateServing: the last fetch succeeded (or none failed yet).
	StateServing State = iota
	// StateOutage: fetches fail with passing conditions (unreachable, timeouts, throttling
	// beyond the budget). Demand reads keep trying; prefetch stops until a fetch succeeds.
	StateOutage
	// StateBroken: a condition that retrying will not fix (the blob was replaced or deleted,
	// access was refused). The breaker is open: reads fail at once, without a request, except
	// one probe per BreakerProbeInterval; prefetch stops. An orchestrator should restart the
	// sidecar (/healthz fails).
	StateBroken
)

func (s State) String() string { return [...]string{"serving", "outage", "broken"}[s] }

// BreakerProbeInterval is how often a source with an open breaker lets one read through to
// see whether the condition has cleared.
const BreakerProbeInterval = 10 * time.Second

// Health is a snapshot of a source's state, for probes and metrics.
type Health struct {
	State State
	Since time.Time // when the state began
	Cause error     // the failure that began it (nil while serving)
	// FailedReads counts the fetches that failed (or were refused by the breaker) since.
	FailedReads int64
}

// healthTracker follows a source's state from the outcome of its fetches and logs each change
// of state once, so that a storage failure gives a few lines, not one per read.
type healthTracker struct {
	log    *slog.Logger
	source string // redacted

	mu        sync.Mutex
	h         Health
	lastProbe time.Time
}

func newHealthTracker(log *slog.Logger, source string) *healthTracker {
	return &healthTracker{log: log, source: source, h: Health{Since: time.Now()}}
}

func (t *healthTracker) snapshot() Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h
}

// prefetchAllowed: prefetch runs only while the source is serving; in an outage or with the
// breaker open it would only send doomed requests.
func (t *healthTracker) prefetchAllowed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h.State == StateServing
}

// gate is asked before each fetch. With the breaker open it refuses all but one probe per
// BreakerProbeInterval, with an error of the kind that opened it.
func (t *healthTracker) gate() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h.State != StateBroken || time.Since(t.lastProbe) >= BreakerProbeInterval {
		t.lastProbe = time.Now()
		return nil
	}
	t.h.FailedReads++
	return &Error{Op: "read", Source: t.source, Kind: kindOf(t.h.Cause),
		Err: fmt.Errorf("not tried: storage breaker open since %s", t.h.Since.Format(time.TimeOnly))}
}

// succeeded records a fetch that worked.
func (t *healthTracker) succeeded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.h.State == StateServing {
		return
	}
	t.log.Warn("storage is serving again", "source", t.source, "after", t.h.State.String(),
		"lasted", time.Since(t.h.Since).Round(time.Millisecond).String(), "failed_reads", t.h.FailedReads)
	t.h = Health{State: StateServing, Since: time.Now()}
}

// failed records a fetch that failed; err is not a cancellation by the caller.
func (t *healthTracker) failed(err error) {
	state := StateOutage
	if permanent(err) {
		state = StateBroken
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if state <= t.h.State { // an outage does not close an open breaker
		t.h.FailedReads++
		return
	}
	prev := t.h
	t.h = Health{State: state, Since: time.Now(), Cause: err, FailedReads: 1}
	t.lastProbe = t.h.Since
	attrs := []any{"source", t.source, "was", prev.State.String(), "failed_reads_before", prev.FailedReads, "err", err}
	if state == StateBroken {
		t.log.Error("storage breaker open: reads fail at once until the condition clears (one probe every "+
			BreakerProbeInterval.String()+"); restart the sidecar to serve a new image", attrs...)
	} else {
		t.log.Warn("storage outage: reads are failing; prefetch paused until a read succeeds", attrs...)
	}
}

// permanent reports failures that retrying the same request cannot fix.
func permanent(err error) bool {
	return errors.Is(err, ErrChanged) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrAuth)
}

// kindOf is the error kind an error wraps, for the breaker's own errors.
func kindOf(err error) error {
	for _, k := range []error{ErrChanged, ErrNotFound, ErrAuth, ErrBadResponse} {
		if errors.Is(err, k) {
			return k
		}
	}
	return ErrUnreachable
}

// Causes of failed fetches, as the metrics label them.
var fetchErrorCauses = [...]string{"unreachable", "not_found", "auth", "changed", "bad_response", "timeout", "other"}

// causeIndex places err in fetchErrorCauses.
func causeIndex(err error) int {
	switch {
	case errors.Is(err, ErrUnreachable):
		return 0
	case errors.Is(err, ErrNotFound):
		return 1
	case errors.Is(err, ErrAuth):
		return 2
	case errors.Is(err, ErrChanged):
		return 3
	case errors.Is(err, ErrBadResponse):
		return 4
	case errors.Is(err, context.DeadlineExceeded):
		return 5
	}
	return 6
}
