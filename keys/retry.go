package keys

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// retryPolicy bounds one network step: each attempt gets its own timeout, transient failures are
// retried with jittered exponential backoff, and the whole step gives up after Attempts tries.
type retryPolicy struct {
	Attempts    int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	StepTimeout time.Duration
}

func (p retryPolicy) withDefaults() retryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 4
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 500 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 8 * time.Second
	}
	if p.StepTimeout <= 0 {
		p.StepTimeout = 30 * time.Second
	}
	return p
}

// errTransient marks an attempt's failure as worth retrying.
type errTransient struct{ err error }

func (e errTransient) Error() string { return e.err.Error() }
func (e errTransient) Unwrap() error { return e.err }

// transient wraps err so that do retries it.
func transient(err error) error { return errTransient{err} }

// do runs attempt until it succeeds, fails permanently, or runs out of attempts. A failure that is
// still transient after the last attempt is returned wrapped in ErrUnavailable.
func (p retryPolicy) do(ctx context.Context, attempt func(ctx context.Context) error) error {
	p = p.withDefaults()
	delay := p.BaseDelay
	var last error
	for i := 0; i < p.Attempts; i++ {
		if i > 0 {
			// Full jitter keeps several sidecars that start together from retrying in step.
			d := delay/2 + rand.N(delay/2+1)
			select {
			case <-ctx.Done():
				return errors.Join(ctx.Err(), last)
			case <-time.After(d):
			}
			delay = min(delay*2, p.MaxDelay)
		}
		actx, cancel := context.WithTimeout(ctx, p.StepTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		var t errTransient
		if !errors.As(err, &t) {
			return err
		}
		last = t.err
		if ctx.Err() != nil {
			break
		}
	}
	return &retryExhausted{attempts: p.Attempts, last: last}
}

// retryExhausted reports the final transient failure after every attempt was used.
type retryExhausted struct {
	attempts int
	last     error
}

func (e *retryExhausted) Error() string {
	return fmt.Sprintf("%v (%d attempts): %v", ErrUnavailable, e.attempts, e.last)
}
func (e *retryExhausted) Unwrap() []error { return []error{ErrUnavailable, e.last} }
