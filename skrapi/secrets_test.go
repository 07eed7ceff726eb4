package skrapi_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"testing"

	"github.com/encfs/encfs/keys/skrtest"
)

// TestNoSecretsInLog runs every route, successes and failures, with debug logging and checks
// that the log holds no released key (in any encoding), access token or attestation token.
func TestNoSecretsInLog(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	a := start(t, env, nil)

	status, out := a.post(t, "/key/release", releaseBody(env))
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	jwkK := parseKey(t, out).K
	status, out = a.post(t, "/attest/maa", map[string]string{"maa_endpoint": env.MAA.URL, "runtime_data": base64.StdEncoding.EncodeToString([]byte(`{"n":1}`))})
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	maaToken := out["token"]
	a.post(t, "/attest/raw", map[string]string{"runtime_data": "AAAA"})
	wrong := releaseBody(env)
	wrong["access_token"] = "wrong-access-token-0123456789"
	a.post(t, "/key/release", wrong)
	env.Vault.SetFaults(skrtest.Faults{TamperWrappedKey: true})
	a.post(t, "/key/release", releaseBody(env))
	a.call(t, "POST", "/key/release", `{"maa_endpoint":"x","akv_endpoint":"y","kid":"k","access_token":"`+env.BearerToken+`","extra":1}`)

	logs := a.logs.Bytes()
	if !bytes.Contains(logs, []byte("/key/release")) || !bytes.Contains(logs, []byte("status=403")) {
		t.Fatalf("the log lacks the requests; the test would prove nothing:\n%s", logs)
	}
	secrets := map[string]string{
		"release key (hex)":           hex.EncodeToString(env.ReleaseKey),
		"release key (base64)":        base64.StdEncoding.EncodeToString(env.ReleaseKey),
		"release key (base64url)":     jwkK,
		"release key (raw)":           string(env.ReleaseKey),
		"access token":                env.BearerToken,
		"wrong access token":          "wrong-access-token-0123456789",
		"attestation token (release)": env.MAA.LastToken(),
		"attestation token (route)":   maaToken,
		"attestation token signature": maaToken[len(maaToken)-40:],
	}
	for name, s := range secrets {
		if bytes.Contains(logs, []byte(s)) {
			t.Errorf("the log holds the %s", name)
		}
	}
	t.Logf("%d bytes of log checked", len(logs))
}
