package keys

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	"github.com/encfs/encfs/keys/internal/jose"
)

// runtimeKeyID names the ephemeral key in the runtime data; Key Vault wraps the released key to
// the key with this id in the token's x-ms-runtime claim.
const runtimeKeyID = "encfs-ephemeral-wrapping-key"

// runtimeKey is the ephemeral RSA-2048 key pair of one release. Its public half travels as the
// attestation runtime data, bound into the SNP report through REPORT_DATA, so Key Vault can only
// wrap the release key to a private key that never leaves this attested process.
type runtimeKey struct {
	priv *rsa.PrivateKey
	data []byte // the runtime data bytes: a JWK set holding the public key
}

func newRuntimeKey() (*runtimeKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate ephemeral RSA key: %w", err)
	}
	data, err := json.Marshal(jose.JWKSet{Keys: []jose.JWK{jose.RSAPublicJWK(&priv.PublicKey, runtimeKeyID, "encrypt")}})
	if err != nil {
		return nil, err
	}
	return &runtimeKey{priv: priv, data: data}, nil
}
