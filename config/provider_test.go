package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/encfs/encfs/config"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/keys/skrtest"
)

// TestConfigToRelease goes from a reference-style configuration document to a released key
// through the test attestation service and Key Vault, as `encfs mount --config` does.
func TestConfigToRelease(t *testing.T) {
	for _, kty := range []string{"oct-HSM", "RSA-HSM"} {
		t.Run(kty, func(t *testing.T) {
			env := skrtest.NewEnv(t, skrtest.EnvOptions{KeyType: kty})
			fs := map[string]any{
				"mount_point": "/mnt/remote/share",
				"azure_url":   "https://acct.blob.core.windows.net/c/encfs.img",
				"key":         env.ConfigKey(),
			}
			if kd := env.ConfigKeyDerivation(); kd != nil {
				fs["key_derivation"] = kd
			}
			doc, _ := json.Marshal(map[string]any{"azure_filesystems": []any{fs}})
			c, err := config.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			var base keys.AzureSKRConfig
			env.Customize(&base)
			p, err := c.AzureFilesystems[0].KeyProvider(c.AzureInfo, base)
			if err != nil {
				t.Fatal(err)
			}
			key, err := p.ReleaseKey(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer keys.Zero(key)
			if !bytes.Equal(key, env.ReleaseKey) {
				t.Fatal("released key differs")
			}
		})
	}
}
