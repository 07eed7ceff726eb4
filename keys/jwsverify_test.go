package keys

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestVaultHost(t *testing.T) {
	for in, want := range map[string]string{
		"https://myvault.vault.azure.net":       "myvault.vault.azure.net",
		"https://127.0.0.1:8443/":               "127.0.0.1",
		"https://hsm.managedhsm.azure.net:443/": "hsm.managedhsm.azure.net",
	} {
		if got, err := vaultHost(in); err != nil || got != want {
			t.Errorf("vaultHost(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := vaultHost("not a url"); err == nil {
		t.Error("bad URL accepted")
	}
}

// FuzzVerifyReleaseJWS: no input may panic the verifier, and none can pass it without a
// certificate from the (empty) trusted pool.
func FuzzVerifyReleaseJWS(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiIsIng1YyI6WyJNSUlCIl19.e30.c2ln")
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.")
	f.Add("a.b.c")
	roots := x509.NewCertPool()
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := verifyReleaseJWS(s, "https://v.vault.azure.net", roots, time.Now()); err == nil {
			t.Fatal("verified without a trusted root")
		}
	})
}
