package keys

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/encfs/encfs/internal/retry"
)

// retryPolicy bounds one network step of key release (attestation, certificate fetch): each
// attempt gets its own timeout, transient failures are retried by internal/retry with jittered
// exponential backoff and the server's Retry-After, and the step gives up after Attempts tries.
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

// transient marks err as worth another try, after the delay the server's answer asked for
// (h may be nil).
func transient(err error, h http.Header) error {
	return retry.Transient(err, retry.After(h, time.Now()))
}

// do runs attempt until it succeeds, fails permanently, or runs out of attempts. A failure that is
// still transient after the last attempt is returned wrapped in ErrUnavailable.
func (p retryPolicy) do(ctx context.Context, attempt func(ctx context.Context) error) error {
	p = p.withDefaults()
	pol := retry.Policy{TryTimeout: p.StepTimeout, BaseDelay: p.BaseDelay, MaxDelay: p.MaxDelay, MaxTries: p.Attempts,
		// Room for every attempt and the waits between them; the caller's deadline applies too.
		Budget: time.Duration(p.Attempts) * (p.StepTimeout + p.MaxDelay)}
	res, err := pol.Do(ctx, attempt)
	if err != nil && retry.IsTransient(err) {
		return &retryExhausted{attempts: res.Tries, last: err}
	}
	return err
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
