package keys_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
)

// TestBearerChallengeResourceChecked: the Key Vault client sends no token to a host whose bearer
// challenge names a resource outside that host's domain (a Managed HSM name answering for
// vault.azure.net here). The check has no switch: tests reach their vault by a Key Vault name.
func TestBearerChallengeResourceChecked(t *testing.T) {
	ca, err := skrtest.NewCA("test TLS CA")
	if err != nil {
		t.Fatal(err)
	}
	const host = "encfs-test.managedhsm.azure.net"
	leaf, leafKey, err := ca.Issue(host)
	if err != nil {
		t.Fatal(err)
	}
	var requests, withToken atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") != "" {
			withToken.Add(1)
		}
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Raw, ca.Cert.Raw}, PrivateKey: leafKey}}}
	srv.StartTLS()
	defer srv.Close()
	var d net.Dialer
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}}
	defer client.CloseIdleConnections()

	c, err := keys.NewKeyVaultClient("https://"+host, keys.NewStaticCredential("test-aad-token"), keys.KeyVaultOptions{HTTPClient: client, Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	policy, err := keys.NewReleasePolicy("sharedeus2.eus2.attest.azure.net", strings.Repeat("ab", 32), false)
	if err != nil {
		t.Fatal(err)
	}
	policyJSON, _ := json.Marshal(policy)
	_, err = keys.ImportKey(context.Background(), c, keys.ImportParams{Name: "k", Key: make([]byte, keys.KeySize), Policy: policyJSON})
	if err == nil || !strings.Contains(err.Error(), "doesn't match the requested domain") {
		t.Fatalf("import through a mismatched challenge: %v", err)
	}
	if requests.Load() == 0 || withToken.Load() != 0 {
		t.Fatalf("%d requests reached the server, %d of them with the token; want the challenge request only", requests.Load(), withToken.Load())
	}
}
