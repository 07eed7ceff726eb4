// Package httpsrc reads an image from any HTTP(S) server that honours Range requests: a
// presigned S3 or GCS URL, nginx, a CDN. Reads are pinned to the version seen at open and
// retried under one time budget; failures are *blobio.Error values of blobio's kinds.
package httpsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/internal/remote"
	"github.com/encfs/encfs/internal/redact"
	"github.com/encfs/encfs/internal/retry"
)

// Options say how Open reaches the server.
type Options struct {
	// HTTPClient carries every request (tests set custom TLS roots); nil uses a shared pool.
	HTTPClient *http.Client
	// Retry bounds the retries of one operation: a read's own deadline (its context's) and
	// Retry.Budget, whichever comes first. Budget defaults to 60s.
	Retry retry.Policy
}

// Source reads an image from any HTTP(S) server that honours Range requests: a presigned
// S3 or GCS URL, nginx, a CDN. It is pinned to the ETag (or, when the server gives only a weak
// ETag or none, to Last-Modified and the total length) seen at open: every answer must carry
// the same validator, so bytes of two versions are never mixed.
type Source struct {
	url      *url.URL
	name     string // redacted
	client   *http.Client
	size     int64
	etag     string // strong ETag, sent as If-Match
	weakETag string // weak ETag: compared, not sent
	lastMod  string // Last-Modified, compared and sent as If-Unmodified-Since when no strong ETag
	retry    remote.Retrier
	retries  atomic.Int64
}

// Open opens a generic range source at u (http or https). It asks for the first byte with
// GET (not HEAD: presigned URLs are signed for one method) to learn the size and validators
// and to check that the server honours Range.
func Open(ctx context.Context, u *url.URL, opts Options) (*Source, error) {
	s := &Source{url: u, name: redact.URL(u), client: opts.HTTPClient}
	if s.client == nil {
		s.client = remote.SharedHTTPClient()
	}
	s.retry = remote.NewRetrier(opts.Retry, &s.retries, s.name, false)
	err := s.retry.Do(ctx, "open", func(ctx context.Context) *remote.Attempt {
		resp, a := s.get(ctx, 0, 0, false)
		if a != nil {
			return a
		}
		defer remote.DrainClose(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return &remote.Attempt{Kind: blobio.ErrBadResponse, Status: resp.StatusCode,
				Err: errors.New("the server ignored the Range header (answered 200 with the whole body); serve the image from a server that honours Range requests")}
		}
		cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || cr.Total < 0 {
			return &remote.Attempt{Kind: blobio.ErrBadResponse, Status: resp.StatusCode,
				Err: fmt.Errorf("Content-Range %q: %v", resp.Header.Get("Content-Range"), errOr(err, "no total length"))}
		}
		s.size = cr.Total
		etag := resp.Header.Get("ETag")
		if strings.HasPrefix(etag, "W/") {
			s.weakETag = etag
		} else {
			s.etag = etag
		}
		s.lastMod = resp.Header.Get("Last-Modified")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

func (s *Source) get(ctx context.Context, off, end int64, pinned bool) (*http.Response, *remote.Attempt) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, &remote.Attempt{Kind: blobio.ErrBadResponse, Err: redact.Err(err)}
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	// Ciphertext does not compress; a transparent gzip would also break the byte ranges.
	req.Header.Set("Accept-Encoding", "identity")
	if pinned {
		if s.etag != "" {
			req.Header.Set("If-Match", s.etag)
		} else if s.lastMod != "" {
			req.Header.Set("If-Unmodified-Since", s.lastMod)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, remote.ClassifyTransport(err)
	}
	if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
		defer remote.DrainClose(resp.Body)
		return nil, remote.ClassifyStatus(resp.StatusCode, "", resp.Header, fmt.Errorf("%s", resp.Status))
	}
	return resp, nil
}

// ReadAt reads len(p) bytes at off with one range GET (retried, resuming after what already
// arrived when a body is cut short).
func (s *Source) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return remote.ReadRanged(ctx, &s.retry, s.name, s.size, p, off, func(ctx context.Context, start, count int64) (io.ReadCloser, *remote.Attempt) {
		end := start + count - 1
		resp, a := s.get(ctx, start, end, true)
		if a != nil {
			return nil, a
		}
		if a := s.check(resp, start, end); a != nil {
			remote.DrainClose(resp.Body)
			return nil, a
		}
		return resp.Body, nil
	})
}

// check verifies that an answer is the range asked for, of the version opened.
func (s *Source) check(resp *http.Response, start, end int64) *remote.Attempt {
	if resp.StatusCode != http.StatusPartialContent {
		return &remote.Attempt{Kind: blobio.ErrBadResponse, Status: resp.StatusCode, Err: errors.New("the server stopped honouring Range requests")}
	}
	cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return &remote.Attempt{Kind: blobio.ErrBadResponse, Status: resp.StatusCode, Err: err}
	}
	if cr.Total != -1 && cr.Total != s.size {
		return &remote.Attempt{Kind: blobio.ErrChanged, Status: resp.StatusCode,
			Err: fmt.Errorf("object length is now %d, was %d", cr.Total, s.size)}
	}
	if cr.Start != start || cr.End != end {
		return &remote.Attempt{Kind: blobio.ErrBadResponse, Status: resp.StatusCode,
			Err: fmt.Errorf("asked for bytes %d-%d, got %d-%d", start, end, cr.Start, cr.End)}
	}
	etag := resp.Header.Get("ETag")
	if pinned := s.etag + s.weakETag; pinned != "" && etag != "" && etag != pinned {
		return &remote.Attempt{Kind: blobio.ErrChanged, Status: resp.StatusCode, Err: fmt.Errorf("ETag is now %s, was %s", etag, pinned)}
	}
	if s.etag == "" && s.lastMod != "" {
		if lm := resp.Header.Get("Last-Modified"); lm != "" && lm != s.lastMod {
			return &remote.Attempt{Kind: blobio.ErrChanged, Status: resp.StatusCode, Err: fmt.Errorf("Last-Modified is now %s, was %s", lm, s.lastMod)}
		}
	}
	return nil
}

func (s *Source) Size() int64    { return s.size }
func (s *Source) String() string { return s.name }
func (s *Source) Close() error   { return nil }

// Retries counts retried attempts since open.
func (s *Source) Retries() int64 { return s.retries.Load() }

// Identity names this exact version of the object (for the disk cache): the URL without its
// query (presigned query strings change on every signing) and the validator.
func (s *Source) Identity() string {
	u := *s.url
	u.RawQuery = ""
	u.User = nil
	return "http " + u.String() + " " + s.etag + s.weakETag + " " + s.lastMod + " " + strconv.FormatInt(s.size, 10)
}

// ContentRange is a parsed Content-Range header of a 206 answer.
type ContentRange struct {
	Start, End int64 // inclusive; -1 for "bytes */TOTAL"
	Total      int64 // -1 when the server wrote "*"
}

// ParseContentRange parses "bytes START-END/TOTAL", "bytes START-END/*" or "bytes */TOTAL"
// (RFC 9110 14.4). It rejects anything else, including END < START and END >= TOTAL.
func ParseContentRange(v string) (ContentRange, error) {
	bad := func(why string) (ContentRange, error) {
		if len(v) > 80 {
			v = v[:80] + "..."
		}
		return ContentRange{}, fmt.Errorf("bad Content-Range %q: %s", v, why)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return bad("want \"bytes START-END/TOTAL\"")
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return bad("no /")
	}
	cr := ContentRange{Start: -1, End: -1, Total: -1}
	if total != "*" {
		t, err := parseNonNeg(total)
		if err != nil {
			return bad("total: " + err.Error())
		}
		cr.Total = t
	}
	if rng == "*" {
		if cr.Total < 0 {
			return bad("neither range nor total")
		}
		return cr, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return bad("no - in range")
	}
	var err error
	if cr.Start, err = parseNonNeg(a); err != nil {
		return bad("start: " + err.Error())
	}
	if cr.End, err = parseNonNeg(b); err != nil {
		return bad("end: " + err.Error())
	}
	if cr.End < cr.Start {
		return bad("end before start")
	}
	if cr.Total >= 0 && cr.End >= cr.Total {
		return bad("range past total length")
	}
	return cr, nil
}

func parseNonNeg(s string) (int64, error) {
	if s == "" || len(s) > 19 || strings.Trim(s, "0123456789") != "" {
		return 0, errors.New("not a decimal number")
	}
	return strconv.ParseInt(s, 10, 64)
}
