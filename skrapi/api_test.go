package skrapi_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/verify"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
	"github.com/encfs/encfs/skrapi"
)

func TestStatusAndRouting(t *testing.T) {
	a := start(t, skrtest.NewEnv(t, skrtest.EnvOptions{}), nil)
	status, out := a.call(t, http.MethodGet, "/status", "")
	if status != 200 || out["message"] != "STATUS OK" || len(out) != 1 {
		t.Fatalf("/status: %d %v", status, out)
	}
	status, out = a.call(t, http.MethodPost, "/status", "{}")
	wantError(t, status, out, http.StatusMethodNotAllowed, "use GET")
	status, out = a.call(t, http.MethodGet, "/key/release", "")
	wantError(t, status, out, http.StatusMethodNotAllowed, "use POST")
	status, out = a.call(t, http.MethodGet, "/attest/other", "")
	wantError(t, status, out, http.StatusNotFound, "/attest/maa", "/key/release")
}

// TestAttestRaw checks the raw report: signed by the platform's VCEK, REPORT_DATA the SHA-256 of
// the decoded runtime data, HOST_DATA the container policy's hash.
func TestAttestRaw(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, nil)
	runtime := []byte("any bytes the caller wants bound into the report")
	status, out := a.post(t, "/attest/raw", map[string]string{"runtime_data": base64.StdEncoding.EncodeToString(runtime)})
	if status != 200 || len(out) != 1 {
		t.Fatalf("%d %v", status, out)
	}
	raw, err := hex.DecodeString(out["report"])
	if err != nil || len(raw) != abi.ReportSize {
		t.Fatalf("report is not hex of %d bytes: %v (%d)", abi.ReportSize, err, len(raw))
	}
	if err := verify.SnpReportSignature(raw, env.SEV.Signer().Vcek); err != nil {
		t.Fatalf("report signature: %v", err)
	}
	rep, err := abi.ReportToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(runtime)
	if want := append(sum[:], make([]byte, 32)...); !bytes.Equal(rep.GetReportData(), want) {
		t.Fatalf("REPORT_DATA %x, want %x", rep.GetReportData(), want)
	}
	if !bytes.Equal(rep.GetHostData(), env.HostData[:]) {
		t.Fatal("HOST_DATA is not the container policy hash")
	}
}

// TestAttestCombined checks the evidence route: the report over the runtime data, verifiable
// with the VCEK of the chain returned with it, the chain up to the platform's ARK, the TCB and
// the UVM endorsement of the security context.
func TestAttestCombined(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, nil)
	runtime := []byte("nonce 7f3a")
	status, out := a.post(t, "/attest/combined", map[string]string{"runtime_data": base64.StdEncoding.EncodeToString(runtime)})
	if status != 200 || len(out) != 4 {
		t.Fatalf("%d %v", status, out)
	}
	std := func(k string) []byte {
		b, err := base64.StdEncoding.DecodeString(out[k])
		if err != nil {
			t.Fatalf("%s is not base64: %v", k, err)
		}
		return b
	}
	var certs []*x509.Certificate
	for rest := std("endorsements"); ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	signer := env.SEV.Signer()
	if len(certs) != 3 || !certs[2].Equal(signer.Ark) || certs[1].CheckSignatureFrom(certs[2]) != nil || certs[0].CheckSignatureFrom(certs[1]) != nil {
		t.Fatalf("endorsements: %d certificates, not VCEK <- ASK <- the platform's ARK", len(certs))
	}
	raw := std("evidence")
	if err := verify.SnpReportSignature(raw, certs[0]); err != nil {
		t.Fatalf("evidence does not verify with the returned VCEK: %v", err)
	}
	rep, _ := abi.ReportToProto(raw)
	sum := sha256.Sum256(runtime)
	if !bytes.Equal(rep.GetReportData()[:32], sum[:]) {
		t.Fatal("evidence does not bind the runtime data")
	}
	if string(std("uvm_endorsements")) != "test UVM endorsement (COSE_Sign1)" {
		t.Fatalf("uvm_endorsements %q", std("uvm_endorsements"))
	}
	if !strings.EqualFold(out["endorsed_tcb"], fmt.Sprintf("%016x", env.SEV.ReportedTCB)) {
		t.Fatalf("endorsed_tcb %s, want %016x", out["endorsed_tcb"], env.SEV.ReportedTCB)
	}
}

// TestAttestMAA checks the token: signed by the attestation service, carrying the caller's
// runtime data and the report's binding to it.
func TestAttestMAA(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, nil)
	runtime := []byte(`{"nonce":"b1c2","pub":"caller's own key"}`)
	// The endpoint as the reference takes it (a host name) is turned into https.
	host := strings.TrimPrefix(env.MAA.URL, "https://")
	status, out := a.post(t, "/attest/maa", map[string]string{"maa_endpoint": host, "runtime_data": base64.StdEncoding.EncodeToString(runtime)})
	if status != 200 || len(out) != 1 {
		t.Fatalf("%d %v", status, out)
	}
	claims := verifyToken(t, env, out["token"])
	rt, _ := claims["x-ms-runtime"].(map[string]any)
	if rt["nonce"] != "b1c2" || rt["pub"] != "caller's own key" {
		t.Fatalf("x-ms-runtime %v", claims["x-ms-runtime"])
	}
	sum := sha256.Sum256(runtime)
	if rd, _ := claims["x-ms-sevsnpvm-reportdata"].(string); !strings.HasPrefix(rd, hex.EncodeToString(sum[:])) {
		t.Fatalf("report data %s does not bind the runtime data", rd)
	}
	if claims["x-ms-sevsnpvm-hostdata"] != hex.EncodeToString(env.HostData[:]) || claims["x-ms-compliance-status"] != "azure-compliant-uvm" {
		t.Fatalf("claims %v", claims)
	}
}

func TestKeyReleaseOct(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, nil)
	for _, kid := range []string{env.KeyName, env.KeyName + "/0123456789abcdef0123456789abcdef", env.Vault.URL + "/keys/" + env.KeyName} {
		body := releaseBody(env)
		body["kid"] = kid
		body["akv_endpoint"] = strings.TrimPrefix(env.Vault.URL, "https://") // a host name, as the reference's examples
		status, out := a.post(t, "/key/release", body)
		if status != 200 {
			t.Fatalf("kid %s: %d %v", kid, status, out)
		}
		k := parseKey(t, out)
		if k.Kty != "oct" || !bytes.Equal(b64(t, k.K), env.ReleaseKey) || len(k.KeyOps) == 0 || !strings.Contains(k.Kid, "/keys/"+env.KeyName+"/") {
			t.Fatalf("kid %s: released JWK %+v is not the vault's key", kid, k.Kty)
		}
	}
}

// TestKeyReleaseRSA checks an RSA-HSM key comes back whole: its private exponent gives the same
// derived key as the mount derives, and the JWK is a consistent RSA key.
func TestKeyReleaseRSA(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{KeyType: "RSA-HSM"})
	a := start(t, env, nil)
	status, out := a.post(t, "/key/release", releaseBody(env))
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	k := parseKey(t, out)
	if k.Kty != "RSA" {
		t.Fatalf("kty %s", k.Kty)
	}
	derived, err := keys.DeriveFromRSA(b64(t, k.D), env.Derivation)
	if err != nil || !bytes.Equal(derived, env.ReleaseKey) {
		t.Fatalf("the JWK's d is not the vault key's private exponent (%v)", err)
	}
	n, p, q := new(big.Int).SetBytes(b64(t, k.N)), new(big.Int).SetBytes(b64(t, k.P)), new(big.Int).SetBytes(b64(t, k.Q))
	if new(big.Int).Mul(p, q).Cmp(n) != 0 || k.DP == "" || k.DQ == "" || k.QI == "" {
		t.Fatal("the JWK is not a consistent RSA private key")
	}
}

func TestKeyReleaseEC(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	priv, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	env.Vault.PutKey("ec-key", skrtest.Key{Kty: "EC-HSM", Material: der, Policy: env.ReleasePolicy, Exportable: true, HSM: true})
	a := start(t, env, nil)
	body := releaseBody(env)
	body["kid"] = "ec-key"
	status, out := a.post(t, "/key/release", body)
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	k := parseKey(t, out)
	if k.Kty != "EC" || k.Crv != "P-384" || len(b64(t, k.X)) != 48 ||
		new(big.Int).SetBytes(b64(t, k.D)).Cmp(priv.D) != 0 || new(big.Int).SetBytes(b64(t, k.X)).Cmp(priv.X) != 0 ||
		new(big.Int).SetBytes(b64(t, k.Y)).Cmp(priv.Y) != 0 {
		t.Fatalf("released JWK is not the EC key: %s %s", k.Kty, k.Crv)
	}
}

// TestKeyReleaseManagedIdentity: without access_token the group's managed identity asks for the
// Key Vault token, once for many requests.
func TestKeyReleaseManagedIdentity(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	const clientID = "11111111-2222-3333-4444-555555555555"
	hits := env.ServeManagedIdentity(t, clientID)
	a := start(t, env, func(o *skrapi.Options) { o.Base.ClientID = clientID; o.Base.BearerToken = "" })
	body := releaseBody(env)
	delete(body, "access_token")
	for range 3 {
		status, out := a.post(t, "/key/release", body)
		if status != 200 || !bytes.Equal(b64(t, parseKey(t, out).K), env.ReleaseKey) {
			t.Fatalf("%d %v", status, out)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("the identity endpoint was asked %d times for 3 releases; want 1 (token cached)", hits.Load())
	}
}

// TestFailureStages checks that each stage's failure answers with the reference's status and a
// message naming the stage and carrying the service's own words.
func TestFailureStages(t *testing.T) {
	t.Run("report", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{})
		a := start(t, env, func(o *skrapi.Options) { o.Base.QuoteProvider = failingQuotes{} })
		status, out := a.post(t, "/attest/raw", map[string]string{"runtime_data": "AAAA"})
		wantError(t, status, out, http.StatusForbidden, "SNP report", "no such device")
		status, out = a.post(t, "/attest/combined", map[string]string{"runtime_data": "AAAA"})
		wantError(t, status, out, http.StatusForbidden, "SNP report")
		status, out = a.post(t, "/attest/maa", map[string]string{"maa_endpoint": env.MAA.URL, "runtime_data": base64.StdEncoding.EncodeToString([]byte("{}"))})
		wantError(t, status, out, http.StatusForbidden, "SNP report")
		status, out = a.post(t, "/key/release", releaseBody(env))
		wantError(t, status, out, http.StatusForbidden, "SNP report")
	})
	t.Run("attestation refused", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{})
		// A VCEK chain that does not verify: Azure Attestation refuses the report and says why.
		signer := env.SEV.Signer()
		pemOf := func(c *x509.Certificate) string {
			return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		}
		doc, _ := json.Marshal(keys.HostAMDCert{VcekCert: pemOf(signer.Ask), CertificateChain: pemOf(signer.Ask) + pemOf(signer.Ark)})
		if err := os.WriteFile(filepath.Join(env.SecurityContextDir, "host-amd-cert-base64"), []byte(base64.StdEncoding.EncodeToString(doc)), 0o600); err != nil {
			t.Fatal(err)
		}
		a := start(t, env, nil)
		status, out := a.post(t, "/key/release", releaseBody(env))
		wantError(t, status, out, http.StatusForbidden, "attestation", "HTTP 400", "VCEK is not signed by the ASK")
		status, out = a.post(t, "/attest/maa", map[string]string{"maa_endpoint": env.MAA.URL, "runtime_data": base64.StdEncoding.EncodeToString([]byte("{}"))})
		wantError(t, status, out, http.StatusForbidden, "attestation", "service said")
	})
	t.Run("attestation unavailable", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{})
		env.MAA.SetFailNext(1000)
		a := start(t, env, nil)
		status, out := a.post(t, "/attest/maa", map[string]string{"maa_endpoint": env.MAA.URL, "runtime_data": base64.StdEncoding.EncodeToString([]byte("{}"))})
		wantError(t, status, out, http.StatusServiceUnavailable, "attestation", "temporarily unavailable")
	})
	t.Run("release policy", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{PolicyHostData: strings.Repeat("ab", 32)})
		a := start(t, env, nil)
		status, out := a.post(t, "/key/release", releaseBody(env))
		wantError(t, status, out, http.StatusForbidden, "key release", "HTTP 403", "release policy", "service said")
	})
	t.Run("release identity", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{})
		a := start(t, env, nil)
		body := releaseBody(env)
		body["access_token"] = "not-the-token"
		status, out := a.post(t, "/key/release", body)
		wantError(t, status, out, http.StatusForbidden, "key release", "HTTP 401")
		if strings.Contains(out["error"], "not-the-token") {
			t.Fatal("the access token is in the error")
		}
		body = releaseBody(env)
		body["kid"] = "no-such-key"
		status, out = a.post(t, "/key/release", body)
		wantError(t, status, out, http.StatusForbidden, "key release", "KeyNotFound")
	})
	t.Run("JWS verification", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{})
		env.Vault.SetFaults(skrtest.Faults{UntrustedChain: true})
		a := start(t, env, nil)
		status, out := a.post(t, "/key/release", releaseBody(env))
		wantError(t, status, out, http.StatusForbidden, "JWS verification", "not trusted")
	})
	t.Run("unwrap", func(t *testing.T) {
		env := skrtest.NewEnv(t, skrtest.EnvOptions{})
		env.Vault.SetFaults(skrtest.Faults{TamperWrappedKey: true})
		a := start(t, env, nil)
		status, out := a.post(t, "/key/release", releaseBody(env))
		wantError(t, status, out, http.StatusForbidden, "unwrap", "integrity check failed")
	})
}

// TestMalformedRequests sends what a confused or hostile client might and checks every answer
// is a 400 (or 413) saying what was wrong, before anything is attested.
func TestMalformedRequests(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, func(o *skrapi.Options) { o.MaxBodyBytes = 4096 })
	rd := base64.StdEncoding.EncodeToString([]byte("{}"))
	maa, vault := env.MAA.URL, env.Vault.URL
	cases := []struct {
		path, body string
		status     int
		want       string
	}{
		{"/attest/raw", ``, 400, `empty request body: send a JSON object with the fields "runtime_data"`},
		{"/attest/raw", `{"runtime_data": "AAAA"`, 400, "truncated"},
		{"/attest/raw", `runtime_data=AAAA`, 400, "not valid JSON"},
		{"/attest/raw", `["AAAA"]`, 400, "must be a JSON object"},
		{"/attest/raw", `{"runtime_data": 12}`, 400, `field "runtime_data" must be a JSON string, not number`},
		{"/attest/raw", `{"runtime_data": "AAAA", "runtimedata": "x"}`, 400, `unknown field "runtimedata": this route takes the fields "runtime_data"`},
		{"/attest/raw", `{"runtime_data": "AAAA"} {"runtime_data": "AAAA"}`, 400, "more than one JSON value"},
		{"/attest/raw", `{}`, 400, `field "runtime_data" is required`},
		{"/attest/raw", `{"runtime_data": "%%%"}`, 400, "runtime_data is not base64"},
		{"/attest/raw", `{"runtime_data": "` + strings.Repeat("A", 5000) + `"}`, 413, "larger than 4096 bytes"},
		{"/attest/maa", `{"runtime_data": "` + rd + `"}`, 400, `field "maa_endpoint" is required`},
		{"/attest/maa", `{"maa_endpoint": "http://` + strings.TrimPrefix(maa, "https://") + `", "runtime_data": "` + rd + `"}`, 400, "must use https"},
		{"/attest/maa", `{"maa_endpoint": "` + maa + `", "runtime_data": "` + base64.StdEncoding.EncodeToString([]byte("plain text")) + `"}`, 400, "JSON object"},
		{"/key/release", `{"maa_endpoint": "` + maa + `", "akv_endpoint": "` + vault + `"}`, 400, `field "kid" is required`},
		{"/key/release", `{"maa_endpoint": "` + maa + `", "akv_endpoint": "` + vault + `", "kid": "../secrets/x"}`, 400, "want a key name"},
		{"/key/release", `{"maa_endpoint": "` + maa + `", "akv_endpoint": "` + vault + `", "kid": "https://other.vault.azure.net/keys/k"}`, 400, "another vault"},
		{"/key/release", `{"maa_endpoint": "` + maa + `", "akv_endpoint": "ftp://x", "kid": "k"}`, 400, "akv_endpoint"},
		{"/key/release", `{"maa_endpoint": "` + maa + `", "akv_endpoint": "` + vault + `", "kid": "k", "access_token": ["x"]}`, 400, `field "access_token" must be a JSON string`},
	}
	for _, tc := range cases {
		status, out := a.call(t, http.MethodPost, tc.path, tc.body)
		body := tc.body
		if len(body) > 60 {
			body = body[:60] + "..."
		}
		t.Run(tc.path+" "+body, func(t *testing.T) { wantError(t, status, out, tc.status, tc.want) })
	}
	if env.SEV.Calls != 0 || env.MAA.RequestCount() != 0 {
		t.Fatalf("bad requests reached the device (%d) or Azure Attestation (%d)", env.SEV.Calls, env.MAA.RequestCount())
	}
	// A body of the right shape but misspelt key is named with the fields the route takes.
	status, out := a.call(t, http.MethodPost, "/key/release", `{"maa_endpoint":"m","akv_endpoint":"a","kid":"k","accesstoken":"x"}`)
	wantError(t, status, out, 400, `"access_token" (optional)`)

}
