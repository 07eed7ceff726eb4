// Package rsaaes implements the RSA-AES key wrap mechanisms Key Vault releases keys with
// (CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256, RSA_AES_KEY_WRAP_384): a transient AES-256 key
// encrypted with RSA-OAEP, followed by that key's RFC 5649 wrap of the key material. Both
// directions live here so the release client and the test Key Vault cannot drift apart.
package rsaaes

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"github.com/encfs/encfs/keys/internal/kwp"
)

// The mechanisms, named as in the Key Vault release request's "enc".
const (
	CKMRSAAESKeyWrap = "CKM_RSA_AES_KEY_WRAP" // OAEP with SHA-1, as PKCS#11 defines the mechanism
	RSAAESKeyWrap256 = "RSA_AES_KEY_WRAP_256"
	RSAAESKeyWrap384 = "RSA_AES_KEY_WRAP_384"
)

// OAEPHash is the OAEP hash of a mechanism.
func OAEPHash(alg string) (func() hash.Hash, error) {
	switch alg {
	case CKMRSAAESKeyWrap:
		return sha1.New, nil
	case RSAAESKeyWrap256:
		return sha256.New, nil
	case RSAAESKeyWrap384:
		return sha512.New384, nil
	}
	return nil, fmt.Errorf("unsupported key wrapping algorithm %q", alg)
}

// Wrap encrypts material to pub with mechanism alg.
func Wrap(pub *rsa.PublicKey, alg string, material []byte) ([]byte, error) {
	h, err := OAEPHash(alg)
	if err != nil {
		return nil, err
	}
	kek := make([]byte, 32)
	defer clear(kek)
	if _, err := rand.Read(kek); err != nil {
		return nil, err
	}
	head, err := rsa.EncryptOAEP(h(), rand.Reader, pub, kek, nil)
	if err != nil {
		return nil, err
	}
	tail, err := kwp.Wrap(kek, material)
	if err != nil {
		return nil, err
	}
	return append(head, tail...), nil
}

// Unwrap reverses Wrap with the private key. The transient key is zeroed; the caller zeroes the
// returned material.
func Unwrap(priv *rsa.PrivateKey, alg string, ciphertext []byte) ([]byte, error) {
	h, err := OAEPHash(alg)
	if err != nil {
		return nil, err
	}
	n := priv.Size()
	if len(ciphertext) <= n {
		return nil, fmt.Errorf("ciphertext of %d bytes is too short for a %d-byte RSA block and a wrapped key", len(ciphertext), n)
	}
	kek, err := rsa.DecryptOAEP(h(), rand.Reader, priv, ciphertext[:n], nil)
	if err != nil {
		return nil, errors.New("RSA-OAEP decryption of the transient key failed (wrapped to another key, or tampered)")
	}
	defer clear(kek)
	switch len(kek) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("transient key of %d bytes", len(kek))
	}
	material, err := kwp.Unwrap(kek, ciphertext[n:])
	if err != nil {
		return nil, fmt.Errorf("unwrap key material: %w", err)
	}
	return material, nil
}
