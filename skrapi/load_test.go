package skrapi_test

import (
	"bytes"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/encfs/encfs/keys/skrtest"
	"github.com/encfs/encfs/skrapi"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(ents)
}

// TestConcurrentReleases sends 100 /key/release requests at once: every one must succeed with
// the right key, and once they are done no goroutine or file descriptor may be left behind
// (the server's, the release clients' and the test servers' connections all close).
func TestConcurrentReleases(t *testing.T) {
	// Not skipped with -short: the CI runs -short under the race detector, which is the point
	// of this test. It takes about half a minute there (an RSA key pair per release).
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, nil)
	idle := func() {
		a.client.CloseIdleConnections()
		env.HTTPClient.CloseIdleConnections()
	}
	// Warm up (first connections, lazily built state), then take the baseline.
	if status, out := a.post(t, "/key/release", releaseBody(env)); status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	idle()
	time.Sleep(200 * time.Millisecond)
	g0, f0 := runtime.NumGoroutine(), openFDs(t)

	const n = 100
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, out := a.post(t, "/key/release", releaseBody(env))
			if status != 200 {
				errs <- out["error"]
				return
			}
			if !bytes.Equal(b64(t, parseKey(t, out).K), env.ReleaseKey) {
				errs <- "wrong key"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d concurrent releases in %v; the vault released %d keys", n, time.Since(start).Round(time.Millisecond), env.Vault.Releases())
	if env.Vault.Releases() != n+1 {
		t.Fatalf("the vault released %d keys, want %d", env.Vault.Releases(), n+1)
	}

	idle()
	deadline := time.Now().Add(10 * time.Second)
	var g, f int
	for {
		g, f = runtime.NumGoroutine(), openFDs(t)
		if g <= g0+2 && f <= f0+2 {
			break
		}
		if time.Now().After(deadline) {
			var dump strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&dump, 1)
			t.Fatalf("leak after %d requests: goroutines %d -> %d, open files %d -> %d\n%s", n, g0, g, f0, f, dump.String())
		}
		idle()
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("goroutines %d -> %d, open files %d -> %d", g0, g, f0, f)
}

// TestConcurrencyBound checks the bound on attestations and releases in progress: with one slot
// and one waiting place, a third request is refused at once with 503 and Retry-After, and the
// others complete once the slot frees.
func TestConcurrencyBound(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	blocker := &blockingQuotes{QuoteProvider: env.SEV, entered: make(chan struct{}, 4), release: make(chan struct{})}
	a := start(t, env, func(o *skrapi.Options) {
		o.Base.QuoteProvider = blocker
		o.MaxConcurrent, o.MaxWaiting = 1, 1
	})
	results := make(chan int, 2)
	send := func() {
		status, _ := a.post(t, "/key/release", releaseBody(env))
		results <- status
	}
	go send()
	<-blocker.entered // the first holds the slot
	go send()
	time.Sleep(500 * time.Millisecond) // the second is now waiting for it
	begin := time.Now()
	status, out := a.post(t, "/key/release", releaseBody(env))
	wantError(t, status, out, http.StatusServiceUnavailable, "busy", "1 waiting")
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("the refusal took %v; it must not wait", d)
	}
	close(blocker.release)
	for range 2 {
		if s := <-results; s != 200 {
			t.Fatalf("a request within the bound got %d", s)
		}
	}
}
