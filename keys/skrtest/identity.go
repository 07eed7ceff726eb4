package skrtest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// ServeManagedIdentity starts a managed identity token endpoint in the App Service shape
// (IDENTITY_ENDPOINT + IDENTITY_HEADER), which azidentity's ManagedIdentityCredential uses when
// those variables are set, and sets them for the rest of the test. The endpoint hands out the
// vault's accepted bearer token, only for clientID when one is given. It returns a request
// counter. Tests using it cannot run in parallel (t.Setenv).
func (e *Env) ServeManagedIdentity(t testing.TB, clientID string) *atomic.Int64 {
	t.Helper()
	secret := randHex(16)
	hits := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		q := r.URL.Query()
		switch {
		case r.Header.Get("X-IDENTITY-HEADER") != secret:
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "missing or wrong X-IDENTITY-HEADER"})
		case q.Get("resource") == "":
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "resource is required"})
		case clientID != "" && q.Get("client_id") != clientID:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "no identity with client_id " + q.Get("client_id")})
		default:
			writeJSON(w, http.StatusOK, map[string]string{
				"access_token": e.BearerToken,
				"expires_on":   strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
				"resource":     q.Get("resource"),
				"token_type":   "Bearer",
			})
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", secret)
	return hits
}
