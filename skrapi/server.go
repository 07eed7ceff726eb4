// Package skrapi serves the secure key release (SKR) REST API of the reference SKR sidecar for
// the other containers of a confidential container group: GET /status, POST /attest/raw (a raw
// SEV-SNP report over the caller's runtime data), POST /attest/combined (the report with its
// certificates and UVM endorsement), POST /attest/maa (an Azure Attestation token for it) and
// POST /key/release (a key released from Key Vault or Managed HSM, as a JWK). The
// routes, JSON fields and status codes are the reference's, so its clients work unchanged; the
// work itself is done by package keys, the same code that releases the filesystem's key.
//
// Requests are bounded (body size, whole-request deadline, outbound timeouts and retries, a
// limit on concurrent attestations and releases), decoded strictly, and logged one line each
// without keys, tokens or bodies.
package skrapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/encfs/encfs/keys"
)

// Defaults of Options.
const (
	DefaultMaxConcurrent  = 8
	DefaultMaxWaiting     = 256
	DefaultRequestTimeout = 2 * time.Minute
	DefaultMaxBodyBytes   = 64 << 10
)

// Options configures a Server. The zero value serves production defaults.
type Options struct {
	// Base is the release configuration every request starts from: certificate cache and
	// identity (from SkrSideCarArgs), and in tests the fake SEV device, test servers and trust
	// roots. Each request sets the attestation authority, the vault, the key and the token.
	Base keys.AzureSKRConfig
	// MaxConcurrent bounds the attestation and release requests (every route but /status) worked
	// on at once (a release makes an RSA key and talks to Azure); more wait for a slot. Default
	// DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxWaiting bounds the requests waiting for a slot; beyond it a request gets 503 at once.
	MaxWaiting int
	// RequestTimeout bounds a whole request, every outbound call and retry included.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds a request body; a larger one gets 413.
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Server is the key release API as an http.Handler.
type Server struct {
	o        Options
	attester *keys.Attester
	quotes   *serialQuotes
	slots    chan struct{}
	waiting  atomic.Int64
	mux      *http.ServeMux

	credOnce sync.Once
	cred     azcore.TokenCredential
	credErr  error
}

// New builds a Server.
func New(o Options) *Server {
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = DefaultMaxWaiting
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Base.Logger == nil {
		o.Base.Logger = o.Logger
	}
	s := &Server{o: o, slots: make(chan struct{}, o.MaxConcurrent)}
	// One report at a time: the SEV guest device (or configfs-tsm entry) is a single
	// per-guest resource, and a report takes milliseconds.
	s.quotes = &serialQuotes{qp: o.Base.QuoteProvider}
	s.o.Base.QuoteProvider = s.quotes
	s.attester = keys.NewAttester(s.o.Base)

	s.mux = http.NewServeMux()
	s.route("/status", http.MethodGet, s.status, false)
	s.route("/attest/raw", http.MethodPost, s.attestRaw, true)
	s.route("/attest/combined", http.MethodPost, s.attestCombined, true)
	s.route("/attest/maa", http.MethodPost, s.attestMAA, true)
	s.route("/key/release", http.MethodPost, s.keyRelease, true)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound,
			Msg: fmt.Sprintf("no route %s %s: the API has GET /status, POST /attest/raw, POST /attest/combined, POST /attest/maa and POST /key/release", r.Method, r.URL.Path)})
	})
	return s
}

// handlerFunc is a route: it returns the response document or an error to send as {"error"}.
type handlerFunc func(ctx context.Context, r *http.Request) (any, error)

// route registers a handler for one method on path, with the request deadline, the body bound,
// the concurrency slot when limited, and one log line per request.
func (s *Server) route(path, method string, h handlerFunc, limited bool) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		var err error
		defer func() { s.logRequest(r, rec.status, time.Since(start), err) }()
		if r.Method != method {
			rec.Header().Set("Allow", method)
			err = &apiError{Status: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("%s %s: use %s", r.Method, path, method)}
			writeError(rec, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.o.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		r.Body = http.MaxBytesReader(rec, r.Body, s.o.MaxBodyBytes)
		if limited {
			release, lerr := s.acquire(ctx)
			if lerr != nil {
				err = lerr
				writeError(rec, err)
				return
			}
			defer release()
		}
		var resp any
		resp, err = h(ctx, r)
		if err != nil {
			writeError(rec, err)
			return
		}
		if b, ok := resp.(rawJSON); ok {
			writeBody(rec, http.StatusOK, b)
			keys.Zero(b)
			return
		}
		writeJSON(rec, http.StatusOK, resp)
	})
}

// acquire waits for a concurrency slot, or refuses when too many already wait.
func (s *Server) acquire(ctx context.Context) (func(), error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	default:
	}
	if s.waiting.Add(1) > int64(s.o.MaxWaiting) {
		s.waiting.Add(-1)
		return nil, &apiError{Status: http.StatusServiceUnavailable, RetryAfter: 1,
			Msg: fmt.Sprintf("busy: %d attestations or releases in progress and %d waiting; retry shortly", s.o.MaxConcurrent, s.o.MaxWaiting)}
	}
	defer s.waiting.Add(-1)
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, &apiError{Status: http.StatusServiceUnavailable, RetryAfter: 1,
			Msg: fmt.Sprintf("busy: no slot among %d concurrent attestations or releases within the request timeout; retry shortly", s.o.MaxConcurrent)}
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers on ln until ctx ends, then stops accepting and waits (up to the request timeout)
// for requests in progress.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.o.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.o.RequestTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// logRequest writes one line per request: never a body, a token or a key.
func (s *Server) logRequest(r *http.Request, status int, d time.Duration, err error) {
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", status, "ms", d.Milliseconds(), "remote", r.RemoteAddr}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	switch {
	case status >= 500:
		s.o.Logger.Error("request failed", attrs...)
	case status >= 400:
		s.o.Logger.Warn("request refused", attrs...)
	default:
		s.o.Logger.Info("request served", attrs...)
	}
}

// credential is the identity used for releases whose request carries no access_token: workload
// identity on AKS, else the (user-assigned, when SkrSideCarArgs names it) managed identity.
// Built once so that its token cache serves every request.
func (s *Server) credential() (azcore.TokenCredential, error) {
	s.credOnce.Do(func() {
		if s.o.Base.Credential != nil {
			s.cred = s.o.Base.Credential
			return
		}
		co := &azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: 3, TryTimeout: 30 * time.Second}}
		if s.o.Base.HTTPClient != nil {
			co.Transport = s.o.Base.HTTPClient
		}
		getenv := s.o.Base.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		s.cred, s.credErr = keys.NewCredential("", s.o.Base.ClientID, getenv, co)
	})
	return s.cred, s.credErr
}

// serialQuotes hands out one SNP report at a time, opening the platform's device on first use
// (so that the API starts, and /status answers, on a machine without one).
type serialQuotes struct {
	mu sync.Mutex
	qp keys.QuoteProvider
}

func (q *serialQuotes) GetRawQuote(reportData [64]byte) ([]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.qp == nil {
		qp, err := keys.DefaultQuoteProvider()
		if err != nil {
			return nil, err
		}
		q.qp = qp
	}
	return q.qp.GetRawQuote(reportData)
}

// statusRecorder remembers the status written, for the log line.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
