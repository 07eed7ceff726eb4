package httpsrc_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/faultproxy"
	"github.com/encfs/encfs/blobio/httpsrc"
	"github.com/encfs/encfs/blobio/internal/sourcetest"
	"github.com/encfs/encfs/blobio/location"
)

// rangeServer serves one object with Range and If-Match support (http.ServeContent); the
// content can be swapped to simulate a replaced object.
type rangeServer struct {
	data atomic.Pointer[[]byte]
	etag atomic.Pointer[string]
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("X-Amz-Signature") != "secret-signature" {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	w.Header().Set("ETag", *s.etag.Load())
	http.ServeContent(w, r, "img", time.Unix(1700000000, 0), bytes.NewReader(*s.data.Load()))
}

func TestHTTPSource(t *testing.T) {
	rs := &rangeServer{}
	data := sourcetest.RandBytes(t, 3<<20+17)
	e1 := `"v1"`
	rs.data.Store(&data)
	rs.etag.Store(&e1)
	srv := httptest.NewServer(rs)
	defer srv.Close()
	px := faultproxy.New(t, srv.URL)
	u := px.URL + "/bucket/img.encfs?X-Amz-Signature=secret-signature&X-Amz-Expires=3600"
	src, err := location.Open(context.Background(), u, location.Options{Retry: sourcetest.FastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*httpsrc.Source); !ok {
		t.Fatalf("%T, want *httpsrc.Source for a non-Azure URL", src)
	}
	if strings.Contains(src.String(), "secret-signature") {
		t.Fatalf("String leaks the signature: %s", src)
	}
	sourcetest.CheckReads(t, src, data)
	px.Next(faultproxy.Truncate, faultproxy.ServerError, faultproxy.Throttle)
	px.SetRetryAfter(0)
	sourcetest.CheckReads(t, src, data)

	// Wrong signature: ErrAuth, and the error does not quote it.
	_, err = location.Open(context.Background(), strings.Replace(u, "secret-signature", "wrong-signature", 1), location.Options{})
	if !errors.Is(err, blobio.ErrAuth) || strings.Contains(err.Error(), "wrong-signature") {
		t.Fatalf("bad signature: %v", err)
	}
	// Replaced object: ErrChanged.
	data2 := sourcetest.RandBytes(t, len(data))
	e2 := `"v2"`
	rs.data.Store(&data2)
	rs.etag.Store(&e2)
	if _, err := src.ReadAt(context.Background(), make([]byte, 10), 0); !errors.Is(err, blobio.ErrChanged) {
		t.Fatalf("after replace: %v", err)
	}
	// A server that ignores Range is refused with a clear message.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer plain.Close()
	if _, err := location.Open(context.Background(), plain.URL+"/x", location.Options{}); !errors.Is(err, blobio.ErrBadResponse) {
		t.Fatalf("no Range support: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := location.Open(context.Background(), srv.URL+"/missing?X-Amz-Signature=secret-signature", location.Options{}); err != nil {
		t.Logf("ok: %v", err)
	}
}
