package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // registers the hashes the algorithms below use
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MaxCompactSize bounds a compact JWS before it is split and decoded; real attestation tokens and
// release responses are a few tens of KiB.
const MaxCompactSize = 1 << 20

// Header is the protected header fields this project reads.
type Header struct {
	Alg     string   `json:"alg"`
	Kid     string   `json:"kid,omitempty"`
	Typ     string   `json:"typ,omitempty"`
	Jku     string   `json:"jku,omitempty"`
	X5c     []string `json:"x5c,omitempty"`
	X5tS256 string   `json:"x5t#S256,omitempty"`
	X5t     string   `json:"x5t,omitempty"`
}

// JWS is a parsed compact JWS. Nothing in it is trusted until Verify succeeds.
type JWS struct {
	Header       Header
	Payload      []byte
	Signature    []byte
	SigningInput string // base64url(header) "." base64url(payload)
}

// Parse splits and decodes a compact JWS (or JWT) without checking its signature.
func Parse(compact string) (*JWS, error) {
	if len(compact) > MaxCompactSize {
		return nil, fmt.Errorf("jws: %d bytes is too large", len(compact))
	}
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("jws: %d dot-separated parts, want 3", len(parts))
	}
	hdr, err := B64.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("jws: header: %w", err)
	}
	var j JWS
	if err := json.Unmarshal(hdr, &j.Header); err != nil {
		return nil, fmt.Errorf("jws: header: %w", err)
	}
	if j.Header.Alg == "" {
		return nil, errors.New("jws: header has no alg")
	}
	if j.Payload, err = B64.DecodeString(parts[1]); err != nil {
		return nil, fmt.Errorf("jws: payload: %w", err)
	}
	if j.Signature, err = B64.DecodeString(parts[2]); err != nil {
		return nil, fmt.Errorf("jws: signature: %w", err)
	}
	j.SigningInput = parts[0] + "." + parts[1]
	return &j, nil
}

// algs maps a JWS alg to its hash and key family. "none" and HMAC are absent on purpose.
var algs = map[string]struct {
	hash crypto.Hash
	kind string // "rsa", "pss" or "ec"
}{
	"RS256": {crypto.SHA256, "rsa"}, "RS384": {crypto.SHA384, "rsa"}, "RS512": {crypto.SHA512, "rsa"},
	"PS256": {crypto.SHA256, "pss"}, "PS384": {crypto.SHA384, "pss"}, "PS512": {crypto.SHA512, "pss"},
	"ES256": {crypto.SHA256, "ec"}, "ES384": {crypto.SHA384, "ec"}, "ES512": {crypto.SHA512, "ec"},
}

// Verify checks the signature with pub (an *rsa.PublicKey or *ecdsa.PublicKey).
func (j *JWS) Verify(pub crypto.PublicKey) error {
	a, ok := algs[j.Header.Alg]
	if !ok {
		return fmt.Errorf("jws: unsupported alg %q", j.Header.Alg)
	}
	h := a.hash.New()
	h.Write([]byte(j.SigningInput))
	digest := h.Sum(nil)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		var err error
		switch a.kind {
		case "rsa":
			err = rsa.VerifyPKCS1v15(k, a.hash, digest, j.Signature)
		case "pss":
			err = rsa.VerifyPSS(k, a.hash, digest, j.Signature, nil)
		default:
			return fmt.Errorf("jws: alg %s with an RSA key", j.Header.Alg)
		}
		if err != nil {
			return errors.New("jws: signature does not verify")
		}
		return nil
	case *ecdsa.PublicKey:
		if a.kind != "ec" {
			return fmt.Errorf("jws: alg %s with an EC key", j.Header.Alg)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(j.Signature) != 2*size {
			return errors.New("jws: signature does not verify")
		}
		r := new(big.Int).SetBytes(j.Signature[:size])
		s := new(big.Int).SetBytes(j.Signature[size:])
		if !ecdsa.Verify(k, digest, r, s) {
			return errors.New("jws: signature does not verify")
		}
		return nil
	default:
		return fmt.Errorf("jws: unsupported key type %T", pub)
	}
}

// Sign produces a compact JWS over payload with an RSA key (RS256, RS384 or RS512), the way the
// test servers sign attestation tokens and release responses.
func Sign(h Header, payload []byte, key *rsa.PrivateKey) (string, error) {
	a, ok := algs[h.Alg]
	if !ok || a.kind != "rsa" {
		return "", fmt.Errorf("jws: cannot sign with alg %q", h.Alg)
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return "", err
	}
	input := B64.EncodeToString(hdr) + "." + B64.EncodeToString(payload)
	d := a.hash.New()
	d.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, a.hash, d.Sum(nil))
	if err != nil {
		return "", err
	}
	return input + "." + B64.EncodeToString(sig), nil
}
