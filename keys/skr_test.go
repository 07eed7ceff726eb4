package keys_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
)

func release(t *testing.T, env *skrtest.Env, edit func(*keys.AzureSKRConfig)) ([]byte, error) {
	t.Helper()
	cfg := env.SKRConfig()
	if edit != nil {
		edit(&cfg)
	}
	p, err := keys.NewAzureSKR(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return p.ReleaseKey(ctx)
}

// stageOf asserts err is a release *Error at the given stage and returns it.
func stageOf(t *testing.T, err error, stage keys.Stage) *keys.Error {
	t.Helper()
	var e *keys.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *keys.Error", err, err)
	}
	if e.Stage != stage {
		t.Fatalf("failed at stage %q, want %q: %v", e.Stage, stage, err)
	}
	t.Logf("error as reported: %v", err)
	return e
}

func TestReleaseOctHSM(t *testing.T) {
	for _, alg := range []string{keys.AlgCKMRSAAESKeyWrap, keys.AlgRSAAESKeyWrap256} {
		t.Run(alg, func(t *testing.T) {
			env := skrtest.NewEnv(t, skrtest.EnvOptions{})
			key, err := release(t, env, func(c *keys.AzureSKRConfig) { c.Algorithm = alg })
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(key, env.ReleaseKey) {
				t.Fatalf("released %x, want %x", key, env.ReleaseKey)
			}
			if env.Vault.Challenges() == 0 {
				t.Error("the client never met the bearer challenge")
			}
			if env.THIMHits.Load() != 0 {
				t.Error("THIM was asked although the security context had current certificates")
			}
		})
	}
}

func TestReleaseRSAHSMDerivesKey(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{KeyType: "RSA-HSM"})
	key, err := release(t, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, env.ReleaseKey) {
		t.Fatalf("derived %x, want %x", key, env.ReleaseKey)
	}
	// Another salt gives another key: the derivation input really is the configured salt.
	key2, err := release(t, env, func(c *keys.AzureSKRConfig) { c.Derivation.Salt = "00" })
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(key2, key) {
		t.Fatal("salt did not change the derived key")
	}
}

func TestStaleCertificatesRefreshedFromTHIM(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{StaleCerts: true})
	key, err := release(t, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, env.ReleaseKey) {
		t.Fatal("wrong key")
	}
	if env.THIMHits.Load() != 1 {
		t.Fatalf("THIM asked %d times, want once", env.THIMHits.Load())
	}
}

func TestCertificatesFromQuoteWithoutSecurityContext(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{NoSecurityContext: true})
	// Without an endorsement MAA does not mark the UVM compliant, so the policy fails: the
	// certificates themselves (from the quote's table) were accepted by attestation.
	_, err := release(t, env, nil)
	e := stageOf(t, err, keys.StageKeyRelease)
	if !errors.Is(err, keys.ErrPolicyNotMet) || e.StatusCode != 403 {
		t.Fatalf("want a 403 policy failure, got %v", err)
	}
	if env.THIMHits.Load() != 0 {
		t.Fatal("THIM asked although the quote carried certificates")
	}
}

func TestPolicyHostDataMismatch(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{PolicyHostData: "ab" + string(bytes.Repeat([]byte("00"), 31))})
	_, err := release(t, env, nil)
	e := stageOf(t, err, keys.StageKeyRelease)
	if !errors.Is(err, keys.ErrPolicyNotMet) || e.StatusCode != 403 {
		t.Fatalf("want ErrPolicyNotMet with 403, got %v", err)
	}
	for _, want := range []string{"release policy was not met", "x-ms-sevsnpvm-hostdata", "service said"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestDebuggableGuestRefused(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	env.SEV.Debug = true
	_, err := release(t, env, nil)
	stageOf(t, err, keys.StageKeyRelease)
	if !errors.Is(err, keys.ErrPolicyNotMet) {
		t.Fatalf("debuggable guest: %v", err)
	}
}

func TestJWSFaultsRejected(t *testing.T) {
	cases := []struct {
		name  string
		fault skrtest.Faults
		stage keys.Stage
		want  string
	}{
		{"bad signature", skrtest.Faults{BadSignature: true}, keys.StageJWSVerification, "signature does not verify"},
		{"untrusted chain", skrtest.Faults{UntrustedChain: true}, keys.StageJWSVerification, "not trusted"},
		{"tampered wrapped key", skrtest.Faults{TamperWrappedKey: true}, keys.StageUnwrap, "integrity check failed"},
		{"replayed response", skrtest.Faults{StaleNonce: true}, keys.StageUnwrap, "answers another request"},
		{"another key released", skrtest.Faults{OtherKid: true}, keys.StageUnwrap, "was requested"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := skrtest.NewEnv(t, skrtest.EnvOptions{})
			env.Vault.SetFaults(tc.fault)
			key, err := release(t, env, nil)
			if key != nil {
				t.Fatal("a key came back")
			}
			stageOf(t, err, tc.stage)
			if !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestJWSFromVaultWithSystemRootsRejected(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.JWSRoots = nil })
	stageOf(t, err, keys.StageJWSVerification)
}

func TestExpiredAttestationToken(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	env.MAA.SetTokenLifetime(-time.Minute)
	_, err := release(t, env, nil)
	e := stageOf(t, err, keys.StageKeyRelease)
	if e.StatusCode != 400 || !bytes.Contains([]byte(e.Message), []byte("expired")) {
		t.Fatalf("want the vault's 400 about an expired token, got %v", err)
	}
}

func TestAttestationRetriedThenSucceeds(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	env.MAA.SetFailNext(2)
	key, err := release(t, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, env.ReleaseKey) || env.MAA.RequestCount() != 3 {
		t.Fatalf("requests %d, want 3", env.MAA.RequestCount())
	}
}

func TestAttestationDown(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	env.MAA.SetFailNext(1000)
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.Attempts = 3 })
	e := stageOf(t, err, keys.StageAttestation)
	if !errors.Is(err, keys.ErrUnavailable) || e.StatusCode != 503 || env.MAA.RequestCount() != 3 {
		t.Fatalf("want ErrUnavailable after 3 tries with 503, got %v after %d", err, env.MAA.RequestCount())
	}
	if !bytes.Contains([]byte(err.Error()), []byte("temporarily unavailable")) {
		t.Fatalf("MAA's own message missing: %v", err)
	}
}

func TestAttestationUnreachable(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	url := env.MAA.URL
	env.MAA.Close()
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.MAAEndpoint = url; c.Attempts = 2 })
	stageOf(t, err, keys.StageAttestation)
	if !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
}

func TestReportDataMismatchCaughtLocally(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.QuoteProvider = wrongReportData{env.SEV} })
	stageOf(t, err, keys.StageSNPReport)
}

func TestAttestationShowsServiceText(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	// Swap the VCEK for the ASK: Azure Attestation refuses the chain and says why.
	signer := env.SEV.Signer()
	pemOf := func(c *x509.Certificate) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	doc, _ := json.Marshal(keys.HostAMDCert{VcekCert: pemOf(signer.Ask), CertificateChain: pemOf(signer.Ask) + pemOf(signer.Ark)})
	if err := os.WriteFile(filepath.Join(env.SecurityContextDir, "host-amd-cert-base64"), []byte(base64.StdEncoding.EncodeToString(doc)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := release(t, env, nil)
	e := stageOf(t, err, keys.StageAttestation)
	if e.StatusCode != 400 || !strings.Contains(err.Error(), "VCEK is not signed by the ASK") {
		t.Fatalf("want MAA's 400 text, got %v", err)
	}
}

// wrongReportData asks the fake device for a report over other REPORT_DATA.
type wrongReportData struct{ keys.QuoteProvider }

func (w wrongReportData) GetRawQuote(rd [64]byte) ([]byte, error) {
	rd[0] ^= 1
	return w.QuoteProvider.GetRawQuote(rd)
}

func TestWrongBearerToken(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.BearerToken = "not-the-token" })
	e := stageOf(t, err, keys.StageKeyRelease)
	if !errors.Is(err, keys.ErrAccessDenied) || e.StatusCode != 401 {
		t.Fatalf("want ErrAccessDenied with 401, got %v", err)
	}
	if bytes.Contains([]byte(err.Error()), []byte("not-the-token")) {
		t.Fatal("the bearer token is in the error")
	}
}

func TestKeyNotFound(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.KeyName = "missing" })
	e := stageOf(t, err, keys.StageKeyRelease)
	if e.StatusCode != 404 || e.Code != "KeyNotFound" {
		t.Fatalf("got %v", err)
	}
}

func TestKeyTypeMismatch(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.KeyType = "RSA-HSM" })
	stageOf(t, err, keys.StageUnwrap)
}

func TestManagedIdentityCredential(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	hits := env.ServeManagedIdentity(t, "11111111-2222-3333-4444-555555555555")
	key, err := release(t, env, func(c *keys.AzureSKRConfig) {
		c.BearerToken = ""
		c.ClientID = "11111111-2222-3333-4444-555555555555"
		c.Getenv = func(string) string { return "" }
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(key, env.ReleaseKey) || hits.Load() == 0 {
		t.Fatalf("managed identity endpoint asked %d times", hits.Load())
	}
	// An identity the endpoint does not know fails at the AAD token stage.
	_, err = release(t, env, func(c *keys.AzureSKRConfig) {
		c.BearerToken = ""
		c.ClientID = "00000000-0000-0000-0000-000000000000"
		c.Attempts = 1
	})
	stageOf(t, err, keys.StageAADToken)
}

func TestCertificateCacheFailureNamesStage(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{StaleCerts: true})
	env.THIM.Close()
	_, err := release(t, env, func(c *keys.AzureSKRConfig) { c.Attempts = 2 })
	stageOf(t, err, keys.StageSecurityContext)
	if !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
}
