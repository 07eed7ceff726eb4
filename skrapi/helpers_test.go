package skrapi_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
	"github.com/encfs/encfs/skrapi"
)

// api is a running key release API in front of a skrtest environment.
type api struct {
	URL    string
	env    *skrtest.Env
	client *http.Client
	logs   *syncBuffer
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// start serves the API on a real loopback listener until the test ends. edit may change the
// options (the base configuration already points at env).
func start(t *testing.T, env *skrtest.Env, edit func(*skrapi.Options)) *api {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o := skrapi.Options{Logger: log}
	env.Customize(&o.Base)
	o.Base.Attempts = 2
	if edit != nil {
		edit(&o)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- skrapi.New(o).Serve(ctx, ln) }()
	a := &api{URL: "http://" + ln.Addr().String(), env: env, client: &http.Client{Transport: &http.Transport{}}, logs: logs}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		a.client.CloseIdleConnections()
	})
	return a
}

// call sends a request with a raw body and returns the status and the decoded JSON answer.
func (a *api) call(t testing.TB, method, path, body string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(method, a.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: Content-Type %q, body %s", method, path, ct, raw)
	}
	var out map[string]string
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object of strings: %v: %s", method, path, err, raw)
	}
	return resp.StatusCode, out
}

// post sends a JSON document.
func (a *api) post(t testing.TB, path string, doc any) (int, map[string]string) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return a.call(t, http.MethodPost, path, string(b))
}

// releaseBody is a /key/release request for the environment's key.
func releaseBody(env *skrtest.Env) map[string]string {
	return map[string]string{
		"maa_endpoint": env.MAA.URL,
		"akv_endpoint": env.Vault.URL,
		"kid":          env.KeyName,
		"access_token": env.BearerToken,
	}
}

// wantError checks a failure's status and that its message says each of want.
func wantError(t testing.TB, status int, out map[string]string, wantStatus int, want ...string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d, want %d: %v", status, wantStatus, out)
	}
	msg, ok := out["error"]
	if !ok || len(out) != 1 {
		t.Fatalf("answer %v is not {\"error\"}", out)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	t.Logf("%d %s", status, msg)
}

// jwk is a private JSON Web Key as /key/release returns it.
type jwk struct {
	Kty, K, N, E, D, P, Q, DP, DQ, QI, Crv, X, Y, Kid string
	KeyOps                                            []string `json:"key_ops"`
}

func parseKey(t testing.TB, out map[string]string) jwk {
	t.Helper()
	s, ok := out["key"]
	if !ok || len(out) != 1 {
		t.Fatalf("answer %v is not {\"key\"}", out)
	}
	var k jwk
	d := json.NewDecoder(strings.NewReader(s))
	if err := d.Decode(&k); err != nil {
		t.Fatalf("key is not a JWK: %v", err)
	}
	return k
}

func b64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%q is not base64url: %v", s, err)
	}
	return b
}

// verifyToken checks an attestation token's RS256 signature with the key the test Azure
// Attestation publishes at /certs and returns its claims.
func verifyToken(t testing.TB, env *skrtest.Env, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	resp, err := env.HTTPClient.Get(env.MAA.URL + "/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct{ Keys []struct{ N, E string } }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("/certs: %v", err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(b64(t, set.Keys[0].N)), E: int(new(big.Int).SetBytes(b64(t, set.Keys[0].E)).Int64())}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], b64(t, parts[2])); err != nil {
		t.Fatalf("token signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b64(t, parts[1]), &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// failingQuotes is a quote provider whose device refuses, as a machine without SEV-SNP would.
type failingQuotes struct{}

func (failingQuotes) GetRawQuote([64]byte) ([]byte, error) {
	return nil, errors.New("open /dev/sev-guest: no such device")
}

// blockingQuotes holds every report until release is closed.
type blockingQuotes struct {
	keys.QuoteProvider
	entered chan struct{}
	release chan struct{}
}

func (b *blockingQuotes) GetRawQuote(rd [64]byte) ([]byte, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.QuoteProvider.GetRawQuote(rd)
}
