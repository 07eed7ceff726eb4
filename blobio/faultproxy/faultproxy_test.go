package faultproxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	body := strings.Repeat("x", 100000)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, body)
	}))
	defer up.Close()
	p := New(t, up.URL)
	get := func(timeout time.Duration) (*http.Response, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.Rewrite(up.URL+"/a"), nil)
		req.Header.Set("Range", "bytes=0-99999")
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	p.SetRetryAfter(3 * time.Second)
	p.SetStall(time.Minute)
	p.Next(Throttle, ServerError, Reset, Truncate, Stall)
	if r, _, err := get(time.Second); err != nil || r.StatusCode != 503 || r.Header.Get("Retry-After") != "3" {
		t.Fatalf("throttle: %v %v", r, err)
	}
	if r, _, err := get(time.Second); err != nil || r.StatusCode != 500 {
		t.Fatalf("500: %v %v", r, err)
	}
	if _, _, err := get(time.Second); err == nil {
		t.Fatal("reset: no error")
	}
	if _, b, err := get(time.Second); err == nil || len(b) >= len(body) {
		t.Fatalf("truncate: %d bytes, %v", len(b), err)
	}
	if _, _, err := get(200 * time.Millisecond); err == nil {
		t.Fatal("stall: answered")
	}
	if r, b, err := get(time.Second); err != nil || r.StatusCode != 200 || b != body {
		t.Fatalf("clean: %v %v", r, err)
	}
	if p.Injected() != 5 || p.Requests() != 6 {
		t.Fatalf("injected %d of %d", p.Injected(), p.Requests())
	}
}
