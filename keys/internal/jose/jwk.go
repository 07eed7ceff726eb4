// Package jose holds the small subset of JOSE that secure key release needs: RSA JSON Web Keys,
// compact JWS/JWT parsing, and signature creation and checking for the algorithms Azure
// Attestation and Key Vault use. It is shared by the release client and its test servers so both
// sides speak exactly the same encoding.
package jose

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// B64 is the unpadded URL-safe base64 used throughout JOSE and the Azure attestation APIs.
var B64 = base64.RawURLEncoding

// JWK is an RSA public JSON Web Key (RFC 7517), the shape of the runtime key sent to Azure
// Attestation and of the keys in its /certs document.
type JWK struct {
	Kty    string   `json:"kty"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	Kid    string   `json:"kid,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	X5c    []string `json:"x5c,omitempty"`
}

// JWKSet is a JSON Web Key Set.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// RSAPublicJWK encodes pub as a JWK.
func RSAPublicJWK(pub *rsa.PublicKey, kid string, ops ...string) JWK {
	return JWK{
		Kty:    "RSA",
		N:      B64.EncodeToString(pub.N.Bytes()),
		E:      B64.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		Kid:    kid,
		KeyOps: ops,
	}
}

// RSAPublicKey decodes an RSA JWK. It refuses moduli below 2048 bits and odd exponents out of
// range so a hostile key set cannot downgrade the wrapping or signing key.
func (k JWK) RSAPublicKey() (*rsa.PublicKey, error) {
	if k.Kty != "RSA" && k.Kty != "RSA-HSM" {
		return nil, fmt.Errorf("jwk %q: kty %q is not RSA", k.Kid, k.Kty)
	}
	n, err := B64.DecodeString(k.N)
	if err != nil {
		return nil, fmt.Errorf("jwk %q: modulus: %w", k.Kid, err)
	}
	e, err := B64.DecodeString(k.E)
	if err != nil {
		return nil, fmt.Errorf("jwk %q: exponent: %w", k.Kid, err)
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("jwk %q: exponent of %d bytes", k.Kid, len(e))
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	if pub.N.BitLen() < 2048 || pub.N.BitLen() > 8192 {
		return nil, fmt.Errorf("jwk %q: %d-bit RSA modulus, want 2048 to 8192", k.Kid, pub.N.BitLen())
	}
	if pub.E < 3 || pub.E%2 == 0 {
		return nil, errors.New("jwk: invalid RSA exponent")
	}
	return pub, nil
}
