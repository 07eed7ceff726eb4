package remote

import (
	"io"
	"net/http"
	"sync"
)

var (
	sharedClientOnce sync.Once
	sharedClient     *http.Client
)

// SharedHTTPClient is one connection pool for every remote source in the process. It has no
// overall timeout (the retrier bounds each try with a context) but keeps enough idle
// connections for parallel chunk fetches.
func SharedHTTPClient() *http.Client {
	sharedClientOnce.Do(func() {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.MaxIdleConns = 128
		t.DisableCompression = true
		sharedClient = &http.Client{Transport: t}
	})
	return sharedClient
}

// DrainClose reads a little of an unwanted body so the connection can be reused, then closes it.
func DrainClose(b io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, b, 64<<10)
	b.Close()
}
