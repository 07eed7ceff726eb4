package skrtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/encfs/encfs/keys"
)

// EnvOptions adjusts the environment NewEnv builds. The zero value gives a working release of a
// 32-byte oct-HSM key.
type EnvOptions struct {
	KeyName string // default "encfs-release-key"
	KeyType string // "oct-HSM" (default), "oct" or "RSA-HSM"
	// PolicyHostData, when set, is the host data the release policy requires instead of the
	// guest's own: a container policy mismatch.
	PolicyHostData string
	// StaleCerts puts certificates for another TCB in the security context, so the client must
	// refresh them from THIM.
	StaleCerts bool
	// NoSecurityContext leaves the security context directory empty.
	NoSecurityContext bool
}

// Env is a complete secure key release setup: a fake SEV-SNP guest, its security context
// directory, a THIM endpoint, Azure Attestation, Key Vault holding a key released to the guest's
// container policy, and the expected 32-byte release key.
type Env struct {
	SEV   *SEV
	MAA   *MAA
	Vault *KeyVault
	CA    *CA // issues the Key Vault release signing certificate
	THIM  *httptest.Server
	// THIMHits counts certificate requests to THIM.
	THIMHits *atomic.Int64

	SecurityContextDir string
	Policy             []byte   // the container security policy; HostData is its SHA-256
	HostData           [32]byte // as in the SNP report
	ReleasePolicy      []byte   // the key's release policy JSON
	KeyName            string
	KeyType            string
	Derivation         keys.KeyDerivation // for RSA-HSM keys
	// ReleaseKey is the 32-byte key a successful release yields (derived, for RSA-HSM).
	ReleaseKey  []byte
	BearerToken string // the AAD access token the vault accepts
	HTTPClient  *http.Client
}

// NewEnv builds an environment; its servers stop when the test ends.
func NewEnv(t testing.TB, o EnvOptions) *Env {
	t.Helper()
	if o.KeyName == "" {
		o.KeyName = "encfs-release-key"
	}
	if o.KeyType == "" {
		o.KeyType = "oct-HSM"
	}
	e := &Env{KeyName: o.KeyName, KeyType: o.KeyType, THIMHits: new(atomic.Int64)}
	e.Policy = []byte("package policy\napi_version := \"0.10.0\"\n# encfs test container policy\n")
	e.HostData = sha256.Sum256(e.Policy)
	var err error
	if e.SEV, err = NewSEV(e.HostData); err != nil {
		t.Fatalf("fake SEV device: %v", err)
	}
	signer := e.SEV.Signer()
	if e.MAA, err = NewMAA(signer.Ark); err != nil {
		t.Fatalf("test MAA: %v", err)
	}
	t.Cleanup(e.MAA.Close)
	if e.CA, err = NewCA("test Key Vault release CA"); err != nil {
		t.Fatal(err)
	}
	e.BearerToken = "test-aad-access-token-" + randHex(8)
	e.HTTPClient = e.client()
	if e.Vault, err = NewKeyVault(e.CA, e.BearerToken, e.HTTPClient); err != nil {
		t.Fatalf("test Key Vault: %v", err)
	}
	t.Cleanup(e.Vault.Close)

	fresh := hostCerts(signer.Vcek, signer.Ask, signer.Ark, e.SEV.ReportedTCB)
	e.THIM = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.THIMHits.Add(1)
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, "Metadata header required", http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, fresh)
	}))
	t.Cleanup(e.THIM.Close)

	e.SecurityContextDir = t.TempDir()
	if !o.NoSecurityContext {
		certs := fresh
		if o.StaleCerts {
			certs = hostCerts(signer.Vcek, signer.Ask, signer.Ark, e.SEV.ReportedTCB+1)
		}
		cj, _ := json.Marshal(certs)
		writeB64(t, e.SecurityContextDir, "host-amd-cert-base64", cj)
		writeB64(t, e.SecurityContextDir, "reference-info-base64", []byte("test UVM endorsement (COSE_Sign1)"))
		writeB64(t, e.SecurityContextDir, "security-policy-base64", e.Policy)
	}

	hd := o.PolicyHostData
	if hd == "" {
		hd = hex.EncodeToString(e.HostData[:])
	}
	pol, err := keys.NewReleasePolicy(e.MAA.URL, hd, false)
	if err != nil {
		t.Fatal(err)
	}
	e.ReleasePolicy, _ = json.Marshal(pol)
	e.Vault.PutKey(e.KeyName, e.makeKey(t))
	return e
}

// client is the one HTTP client of the environment (the release clients', and the vault's own
// for the MAA's signing keys): it trusts the httptest servers' certificate (the MAA's, THIM's,
// the identity endpoint's) and the CA of the vault's, and reaches the vault at VaultHost.
func (e *Env) client() *http.Client {
	tr := e.MAA.Client().Transport.(*http.Transport).Clone()
	roots := tr.TLSClientConfig.RootCAs.Clone()
	roots.AddCert(e.CA.Cert)
	tr.TLSClientConfig.RootCAs = roots
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return e.Vault.Dial(ctx, network, addr) // e.Vault is set before any request
	}
	return &http.Client{Transport: tr}
}

// makeKey creates the vault key and the release key it yields.
func (e *Env) makeKey(t testing.TB) Key {
	k := Key{Kty: e.KeyType, Policy: e.ReleasePolicy, Exportable: true, HSM: true}
	switch e.KeyType {
	case "oct", "oct-HSM":
		k.Material = make([]byte, keys.KeySize)
		_, _ = rand.Read(k.Material)
		e.ReleaseKey = append([]byte(nil), k.Material...)
	case "RSA-HSM":
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		k.Material, _ = x509.MarshalPKCS8PrivateKey(priv)
		e.Derivation = keys.KeyDerivation{Salt: randHex(16), Label: ""}
		if e.ReleaseKey, err = keys.DeriveFromRSA(priv.D.Bytes(), e.Derivation); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("skrtest: key type %q", e.KeyType)
	}
	return k
}

// Customize points a release configuration at this environment's fake device, servers and trust
// roots, with short retry delays. Tests apply it to the release configuration base that the
// sidecar, the key release API and config.FileSystem.KeyProvider take.
func (e *Env) Customize(c *keys.AzureSKRConfig) {
	c.QuoteProvider = e.SEV
	c.HTTPClient = e.HTTPClient
	c.JWSRoots = e.CA.Pool()
	c.SecurityContextDir = e.SecurityContextDir
	c.CertCache = keys.CertCache{EndpointType: "LocalTHIM", Endpoint: e.THIM.URL}
	c.RetryDelay = 10 * time.Millisecond
	c.StepTimeout = 10 * time.Second
	c.Getenv = func(string) string { return "" } // never the test process's own environment
}

// SKRConfig is a complete release configuration for the environment's key.
func (e *Env) SKRConfig() keys.AzureSKRConfig {
	c := keys.AzureSKRConfig{
		MAAEndpoint: e.MAA.URL,
		VaultURL:    e.Vault.URL,
		KeyName:     e.KeyName,
		KeyType:     e.KeyType,
		Derivation:  e.Derivation,
		BearerToken: e.BearerToken,
	}
	e.Customize(&c)
	return c
}

// ConfigKey is the reference configuration's "key" object for the environment's key, and
// ConfigKeyDerivation its "key_derivation" (nil unless RSA-HSM); put them in an
// azure_filesystems entry.
func (e *Env) ConfigKey() map[string]any {
	return map[string]any{
		"kid":       e.KeyName,
		"kty":       e.KeyType,
		"authority": map[string]any{"endpoint": e.MAA.URL},
		"akv":       map[string]any{"endpoint": e.Vault.URL, "bearer_token": e.BearerToken},
	}
}

// ConfigKeyDerivation: see ConfigKey.
func (e *Env) ConfigKeyDerivation() map[string]any {
	if e.KeyType != "RSA-HSM" {
		return nil
	}
	return map[string]any{"salt": e.Derivation.Salt, "label": e.Derivation.Label}
}

func hostCerts(vcek, ask, ark *x509.Certificate, tcb uint64) keys.HostAMDCert {
	p := func(c *x509.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return keys.HostAMDCert{VcekCert: p(vcek), CertificateChain: p(ask) + p(ark), Tcbm: fmt.Sprintf("%016X", tcb), CacheControl: "86400"}
}

func writeB64(t testing.TB, dir, name string, b []byte) {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(base64.StdEncoding.EncodeToString(b)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
