// Package faultproxy is an HTTP reverse proxy for tests that injects the faults object storage
// shows in production: throttling (503 with Retry-After), 500s, connection resets, stalls and
// bodies cut short. Put it in front of Azurite (or any server) and point a client at URL.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what the proxy does to one request.
type Fault int

const (
	None        Fault = iota // forward untouched
	Throttle                 // 503 ServerBusy with Retry-After: RetryAfter
	ServerError              // 500 InternalError
	Reset                    // close the connection with a TCP RST, no answer
	Stall                    // answer nothing for StallFor (or until the client gives up), then forward
	Truncate                 // forward the headers and half the body, then close the connection
	Close                    // accept the request and close the connection without an answer
)

func (f Fault) String() string {
	return [...]string{"none", "throttle", "server-error", "reset", "stall", "truncate", "close"}[f]
}

// Proxy forwards to a target and injects faults into the requests Match selects.
type Proxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:PORT).
	URL    string
	target *url.URL
	srv    *httptest.Server
	tr     *http.Transport

	mu         sync.Mutex
	queue      []Fault
	always     Fault
	match      func(*http.Request) bool
	retryAfter time.Duration
	stallFor   time.Duration

	injected atomic.Int64
	requests atomic.Int64
	ranges   []Range // the ranged reads seen, in order (guarded by mu)
}

// Range is one ranged read the proxy forwarded or faulted: bytes [Off, End) of the blob.
type Range struct{ Off, End int64 }

// New starts a proxy to target (scheme://host[:port]) and closes it in t.Cleanup. By default
// faults hit only GET requests that carry a Range or x-ms-range header: the reads.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{target: &url.URL{Scheme: u.Scheme, Host: u.Host}, retryAfter: time.Second, stallFor: time.Minute,
		match: isRead}
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.tr.MaxIdleConnsPerHost = 64
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = p.srv.URL
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// Rewrite turns a URL of the target into the same URL through the proxy.
func (p *Proxy) Rewrite(targetURL string) string {
	u, err := url.Parse(targetURL)
	if err != nil {
		panic(err)
	}
	pu, _ := url.Parse(p.URL)
	u.Scheme, u.Host = pu.Scheme, pu.Host
	return u.String()
}

// Next makes the next matching requests meet these faults, one each, in order.
func (p *Proxy) Next(faults ...Fault) {
	p.mu.Lock()
	p.queue = append(p.queue, faults...)
	p.mu.Unlock()
}

// Always makes every matching request meet f (after the queue); Always(None) ends it.
func (p *Proxy) Always(f Fault) {
	p.mu.Lock()
	p.always = f
	p.mu.Unlock()
}

// Match replaces the request filter.
func (p *Proxy) Match(m func(*http.Request) bool) {
	p.mu.Lock()
	p.match = m
	p.mu.Unlock()
}

// SetRetryAfter sets the Retry-After of Throttle (rounded to whole seconds, at least 0).
func (p *Proxy) SetRetryAfter(d time.Duration) {
	p.mu.Lock()
	p.retryAfter = d
	p.mu.Unlock()
}

// SetStall sets how long Stall holds a request.
func (p *Proxy) SetStall(d time.Duration) {
	p.mu.Lock()
	p.stallFor = d
	p.mu.Unlock()
}

// Injected counts requests that met a fault; Requests counts all.
func (p *Proxy) Injected() int64 { return p.injected.Load() }
func (p *Proxy) Requests() int64 { return p.requests.Load() }

// Ranges returns the ranged reads seen so far, in the order they arrived.
func (p *Proxy) Ranges() []Range {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Range(nil), p.ranges...)
}

// recordRange notes a ranged read ("bytes=FIRST-LAST" in Range or x-ms-range).
func (p *Proxy) recordRange(r *http.Request) {
	h := r.Header.Get("x-ms-range")
	if h == "" {
		h = r.Header.Get("Range")
	}
	var first, last int64
	if r.Method != http.MethodGet || h == "" {
		return
	}
	if _, err := fmt.Sscanf(h, "bytes=%d-%d", &first, &last); err != nil {
		return
	}
	p.mu.Lock()
	p.ranges = append(p.ranges, Range{first, last + 1})
	p.mu.Unlock()
}

func (p *Proxy) pick(r *http.Request) (Fault, time.Duration, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.match(r) {
		return None, 0, 0
	}
	f := p.always
	if len(p.queue) > 0 {
		f, p.queue = p.queue[0], p.queue[1:]
	}
	return f, p.retryAfter, p.stallFor
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.recordRange(r)
	f, retryAfter, stallFor := p.pick(r)
	if f != None {
		p.injected.Add(1)
	}
	switch f {
	case Throttle:
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		w.Header().Set("x-ms-error-code", "ServerBusy")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy (injected).</Message></Error>`)
		return
	case ServerError:
		w.Header().Set("x-ms-error-code", "InternalError")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>InternalError</Code><Message>Injected.</Message></Error>`)
		return
	case Reset:
		reset(w)
		return
	case Close:
		// What an L4 load balancer does when its backend is gone: the client sees the
		// connection end (io.EOF) where it expected a status line.
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
		return
	case Stall:
		select {
		case <-r.Context().Done():
			return
		case <-time.After(stallFor):
		}
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = p.target.Host
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if f == Truncate {
		n := resp.ContentLength / 2
		if n < 0 {
			n = 1
		}
		_, _ = io.CopyN(w, resp.Body, n)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if c, _, err := rc.Hijack(); err == nil {
			c.Close()
		}
		return
	}
	_, _ = io.Copy(w, resp.Body)
}

// reset closes the client's connection with an RST.
func reset(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// isRead matches ranged GETs: Range (HTTP) or x-ms-range (the Azure SDK).
func isRead(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.Header.Get("Range") != "" || r.Header.Get("x-ms-range") != "")
}
