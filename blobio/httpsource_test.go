package blobio_test

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
	data := randBytes(t, 3<<20+17)
	e1 := `"v1"`
	rs.data.Store(&data)
	rs.etag.Store(&e1)
	srv := httptest.NewServer(rs)
	defer srv.Close()
	px := faultproxy.New(t, srv.URL)
	u := px.URL + "/bucket/img.encfs?X-Amz-Signature=secret-signature&X-Amz-Expires=3600"
	src, err := blobio.Open(context.Background(), u, blobio.Options{Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*blobio.HTTPSource); !ok {
		t.Fatalf("%T, want *HTTPSource for a non-Azure URL", src)
	}
	if strings.Contains(src.String(), "secret-signature") {
		t.Fatalf("String leaks the signature: %s", src)
	}
	checkReads(t, src, data)
	px.Next(faultproxy.Truncate, faultproxy.ServerError, faultproxy.Throttle)
	px.SetRetryAfter(0)
	checkReads(t, src, data)

	// Wrong signature: ErrAuth, and the error does not quote it.
	_, err = blobio.Open(context.Background(), strings.Replace(u, "secret-signature", "wrong-signature", 1), blobio.Options{})
	if !errors.Is(err, blobio.ErrAuth) || strings.Contains(err.Error(), "wrong-signature") {
		t.Fatalf("bad signature: %v", err)
	}
	// Replaced object: ErrChanged.
	data2 := randBytes(t, len(data))
	e2 := `"v2"`
	rs.data.Store(&data2)
	rs.etag.Store(&e2)
	if _, err := src.ReadAt(context.Background(), make([]byte, 10), 0); !errors.Is(err, blobio.ErrChanged) {
		t.Fatalf("after replace: %v", err)
	}
	// A server that ignores Range is refused with a clear message.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer plain.Close()
	if _, err := blobio.Open(context.Background(), plain.URL+"/x", blobio.Options{}); !errors.Is(err, blobio.ErrBadResponse) {
		t.Fatalf("no Range support: %v", err)
	} else {
		t.Log(err)
	}
	if _, err := blobio.Open(context.Background(), srv.URL+"/missing?X-Amz-Signature=secret-signature", blobio.Options{}); err != nil {
		t.Logf("ok: %v", err)
	}
}

func TestOpenRejectsBadLocations(t *testing.T) {
	for _, loc := range []string{
		"ftp://example.com/x",
		"https://acct.blob.core.windows.net/onlycontainer",
		"http://127.0.0.1:10000/devstoreaccount1/c",
		"https:///nohost",
		"/nonexistent/image.encfs",
	} {
		if _, err := blobio.Open(context.Background(), loc, blobio.Options{}); err == nil {
			t.Errorf("Open(%q) succeeded", loc)
		} else {
			t.Logf("%s: %v", loc, err)
		}
	}
}
