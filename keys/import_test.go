package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
)

func TestImportThenRelease(t *testing.T) {
	env := skrtest.NewEnv(t, skrtest.EnvOptions{})
	c, err := keys.NewKeyVaultClient(env.Vault.URL, keys.NewStaticCredential(env.BearerToken), keys.KeyVaultOptions{
		HTTPClient: env.HTTPClient,
	})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	kid, err := keys.ImportKey(context.Background(), c, keys.ImportParams{Name: "imported", Key: key, Policy: env.ReleasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kid, "/keys/imported/") {
		t.Fatalf("kid %q", kid)
	}
	stored := env.Vault.GetKey("imported")
	if stored == nil || stored.Kty != "oct-HSM" || !stored.Exportable || !stored.HSM || !bytes.Equal(stored.Policy, env.ReleasePolicy) {
		t.Fatalf("stored %+v", stored)
	}
	got, err := release(t, env, func(c *keys.AzureSKRConfig) { c.KeyName = "imported" })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, key) {
		t.Fatal("released key differs from the imported one")
	}

	if _, err := keys.ImportKey(context.Background(), c, keys.ImportParams{Name: "x", Key: key[:16], Policy: env.ReleasePolicy}); err == nil {
		t.Fatal("16-byte key imported")
	}
	if _, err := keys.ImportKey(context.Background(), c, keys.ImportParams{Name: "x", Key: key, Policy: []byte(`{}`)}); err == nil {
		t.Fatal("empty policy accepted")
	}
	bad, _ := keys.NewKeyVaultClient(env.Vault.URL, keys.NewStaticCredential("wrong"), keys.KeyVaultOptions{
		HTTPClient: env.HTTPClient,
	})
	_, err = keys.ImportKey(context.Background(), bad, keys.ImportParams{Name: "y", Key: key, Policy: env.ReleasePolicy})
	if !errors.Is(err, keys.ErrAccessDenied) {
		t.Fatalf("wrong token: %v", err)
	}
}
