package keys_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"testing"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
)

// TestNoSecretsInLogsOrErrors runs a successful release and failing ones with debug logging
// captured (the provider's logger and the process default) and checks that neither the log nor
// any error text holds the release key, the AAD bearer token or the attestation token.
func TestNoSecretsInLogsOrErrors(t *testing.T) {
	var logs bytes.Buffer
	h := slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	old := slog.Default()
	slog.SetDefault(slog.New(h))
	defer slog.SetDefault(old)

	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	withLog := func(c *keys.AzureSKRConfig) { c.Logger = slog.New(h); c.Attempts = 2 }
	var texts bytes.Buffer
	key, err := release(t, env, withLog)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Zero(key)
	p, _ := keys.NewAzureSKR(env.SKRConfig())
	fmt.Fprintf(&texts, "%v %+v %#v\n", p, p, env.SKRConfig().Credential)

	for _, f := range []skrtest.Faults{{BadSignature: true}, {TamperWrappedKey: true}, {UntrustedChain: true}} {
		env.Vault.SetFaults(f)
		_, err := release(t, env, withLog)
		fmt.Fprintf(&texts, "%v\n%+v\n", err, err)
	}
	env.Vault.SetFaults(skrtest.Faults{})
	_, err = release(t, env, func(c *keys.AzureSKRConfig) { withLog(c); c.KeyName = "missing" })
	fmt.Fprintf(&texts, "%v\n", err)
	_, err = release(t, env, func(c *keys.AzureSKRConfig) { withLog(c); c.BearerToken += "x" })
	fmt.Fprintf(&texts, "%v\n", err)

	token := env.MAA.LastToken()
	if token == "" {
		t.Fatal("no attestation token was issued")
	}
	secrets := map[string]string{
		"release key (hex)":       hex.EncodeToString(env.ReleaseKey),
		"release key (base64)":    base64.StdEncoding.EncodeToString(env.ReleaseKey),
		"release key (base64url)": base64.RawURLEncoding.EncodeToString(env.ReleaseKey),
		"release key (raw)":       string(env.ReleaseKey),
		"bearer token":            env.BearerToken,
		"attestation token":       token,
		"attestation token body":  token[:len(token)/2],
	}
	if logs.Len() == 0 {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	for name, s := range secrets {
		if bytes.Contains(logs.Bytes(), []byte(s)) {
			t.Errorf("the log holds the %s", name)
		}
		if bytes.Contains(texts.Bytes(), []byte(s)) {
			t.Errorf("an error or String holds the %s", name)
		}
	}
}
