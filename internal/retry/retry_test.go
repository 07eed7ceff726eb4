package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

var errPassing = errors.New("connection reset")

func TestDoRetriesTransientUntilSuccess(t *testing.T) {
	calls, retries := 0, 0
	p := Policy{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, OnRetry: func() { retries++ }}
	res, err := p.Do(context.Background(), func(context.Context) error {
		calls++
		if calls < 5 {
			return Transient(errPassing, 0)
		}
		return nil
	})
	if err != nil || res.Tries != 5 || calls != 5 || retries != 4 {
		t.Fatalf("err %v, tries %d, calls %d, retries %d", err, res.Tries, calls, retries)
	}
}

func TestDoStopsAtPermanentError(t *testing.T) {
	permanent := errors.New("404")
	calls := 0
	_, err := Policy{}.Do(context.Background(), func(context.Context) error { calls++; return permanent })
	if !errors.Is(err, permanent) || IsTransient(err) || calls != 1 {
		t.Fatalf("err %v, calls %d", err, calls)
	}
}

// A failure that keeps passing is retried for the whole budget, not for a count of tries: an
// outage shorter than the budget is ridden out.
func TestDoIsBoundedByTimeNotTries(t *testing.T) {
	outageEnds := time.Now().Add(300 * time.Millisecond)
	p := Policy{BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond, Budget: 2 * time.Second}
	res, err := p.Do(context.Background(), func(context.Context) error {
		if time.Now().Before(outageEnds) {
			return Transient(errPassing, 0)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("outage of 300ms not ridden out with a 2s budget: %v after %d tries", err, res.Tries)
	}
	if res.Tries < 5 {
		t.Errorf("only %d tries in 300ms of outage with waits of at most 20ms", res.Tries)
	}

	start := time.Now()
	res, err = Policy{BaseDelay: 5 * time.Millisecond, MaxDelay: 20 * time.Millisecond, Budget: 200 * time.Millisecond}.Do(
		context.Background(), func(context.Context) error { return Transient(errPassing, 0) })
	took := time.Since(start)
	if !errors.Is(err, errPassing) || !IsTransient(err) {
		t.Fatalf("err %v", err)
	}
	if took > time.Second || took < 150*time.Millisecond { // slack for a loaded machine
		t.Errorf("a 200ms budget took %v (%d tries)", took, res.Tries)
	}
}

func TestDoHonoursTheContextDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Policy{Budget: time.Hour, BaseDelay: 10 * time.Millisecond}.Do(ctx, func(ctx context.Context) error {
		<-ctx.Done() // a stalled connection
		return Transient(ctx.Err(), 0)
	})
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v with a 150ms deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v", err)
	}
}

// Each try is bounded by TryTimeout, so a stalled try is abandoned and the next one succeeds.
func TestDoTryTimeout(t *testing.T) {
	calls := 0
	res, err := Policy{TryTimeout: 50 * time.Millisecond, BaseDelay: time.Millisecond, Budget: 5 * time.Second}.Do(
		context.Background(), func(ctx context.Context) error {
			calls++
			if calls == 1 {
				<-ctx.Done()
				return Transient(ctx.Err(), 0)
			}
			return nil
		})
	if err != nil || res.Tries != 2 || res.Took > time.Second {
		t.Fatalf("err %v, tries %d, took %v", err, res.Tries, res.Took)
	}
}

func TestDoRetryAfter(t *testing.T) {
	calls := 0
	var gap time.Duration
	var last time.Time
	_, err := Policy{BaseDelay: time.Millisecond, Budget: 5 * time.Second}.Do(context.Background(), func(context.Context) error {
		calls++
		if calls == 2 {
			gap = time.Since(last)
			return nil
		}
		last = time.Now()
		return Transient(errPassing, 120*time.Millisecond)
	})
	if err != nil || gap < 120*time.Millisecond {
		t.Fatalf("err %v, gap %v", err, gap)
	}
	// A Retry-After past the deadline fails at once instead of sleeping into it.
	start := time.Now()
	_, err = Policy{Budget: 100 * time.Millisecond}.Do(context.Background(), func(context.Context) error {
		return Transient(errPassing, time.Minute)
	})
	if err == nil || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestDoMaxTries(t *testing.T) {
	calls := 0
	res, err := Policy{MaxTries: 3, BaseDelay: time.Millisecond}.Do(context.Background(), func(context.Context) error {
		calls++
		return Transient(errPassing, 0)
	})
	if !IsTransient(err) || res.Tries != 3 || calls != 3 {
		t.Fatalf("err %v, tries %d", err, res.Tries)
	}
}

func TestDoCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	_, err := Policy{BaseDelay: time.Second}.Do(ctx, func(context.Context) error { return Transient(errPassing, 0) })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	p := Policy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.WithDefaults()
	for tries := 1; tries < 40; tries++ {
		d := p.backoff(tries)
		want := min(100*time.Millisecond<<min(tries-1, 20), time.Second)
		if d < want/2 || d > want {
			t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tries, d, want/2, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		" 7 ":                           7 * time.Second,
		"-1":                            0,
		"abc":                           0,
		"1e9":                           0,
		"99999999999999999999999":       MaxAfter,
		"86400":                         MaxAfter,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 00:00:10 GMT": 0,
	} {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestAfterHeaders(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		h    map[string]string
		want time.Duration
	}{
		{map[string]string{"x-ms-retry-after-ms": "250", "Retry-After": "9"}, 250 * time.Millisecond},
		{map[string]string{"retry-after-ms": "1500"}, 1500 * time.Millisecond},
		{map[string]string{"retry-after-ms": "junk", "Retry-After": "2"}, 2 * time.Second},
		{map[string]string{"x-ms-retry-after-ms": "999999999999"}, MaxAfter},
		{map[string]string{"Retry-After": "Thu, 01 Jan 2026 00:00:03 GMT"}, 3 * time.Second},
		{nil, 0},
	} {
		h := http.Header{}
		for k, v := range c.h {
			h.Set(k, v)
		}
		if got := After(h, now); got != c.want {
			t.Errorf("After(%v) = %v, want %v", c.h, got, c.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "Fri, 31 Dec 1999 23:59:59 GMT", "-5", "1e9"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		if d := ParseRetryAfter(s, now); d < 0 || d > MaxAfter {
			t.Fatalf("%q -> %v", s, d)
		}
	})
}
