package keys

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// ImportParams describes a 32-byte release key to import into Key Vault or Managed HSM.
type ImportParams struct {
	Name    string
	Key     []byte // 32 raw bytes; not retained
	KeyType string // "oct-HSM" (default, Managed HSM) or "oct"
	Policy  []byte // release policy JSON
	// Immutable makes the release policy unchangeable for the life of the key.
	Immutable bool
}

// ImportKey imports the key as exportable with its release policy and returns its key id.
func ImportKey(ctx context.Context, c *azkeys.Client, p ImportParams) (string, error) {
	if len(p.Key) != KeySize {
		return "", fmt.Errorf("import: key holds %d bytes, want %d", len(p.Key), KeySize)
	}
	if p.KeyType == "" {
		p.KeyType = "oct-HSM"
	}
	if p.KeyType != "oct-HSM" && p.KeyType != "oct" {
		return "", fmt.Errorf("import: kty %q: a release key is oct-HSM or oct", p.KeyType)
	}
	if _, err := ParseReleasePolicy(p.Policy); err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	kty := azkeys.KeyType(p.KeyType)
	hsm, exportable := p.KeyType == "oct-HSM", true
	contentType := "application/json; charset=utf-8"
	k := append([]byte(nil), p.Key...)
	defer Zero(k)
	resp, err := c.ImportKey(ctx, p.Name, azkeys.ImportKeyParameters{
		Key: &azkeys.JSONWebKey{
			Kty:    &kty,
			K:      k,
			KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationWrapKey), ptr(azkeys.KeyOperationUnwrapKey), ptr(azkeys.KeyOperationEncrypt), ptr(azkeys.KeyOperationDecrypt)},
		},
		HSM:           &hsm,
		KeyAttributes: &azkeys.KeyAttributes{Exportable: &exportable},
		ReleasePolicy: &azkeys.KeyReleasePolicy{ContentType: &contentType, EncodedPolicy: p.Policy, Immutable: &p.Immutable},
	}, nil)
	if err != nil {
		return "", keyVaultError(StageKeyImport, err)
	}
	if resp.Key == nil || resp.Key.KID == nil {
		return "", fmt.Errorf("import: Key Vault answered without a key id")
	}
	return string(*resp.Key.KID), nil
}

func ptr[T any](v T) *T { return &v }
