package skrapi

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	"github.com/encfs/encfs/keys"
)

// releasedJWK encodes a released key as a private JWK (RFC 7517/7518), as the reference does:
// oct keys as {"kty":"oct","k"}, RSA keys with every private field, EC keys with crv, x, y and
// d; each with the vault's key_ops and kid. It is built in a byte slice the caller zeroes.
func releasedJWK(rel *keys.ReleasedKey) ([]byte, error) {
	var b jwkBuilder
	switch rel.Kty {
	case "oct", "oct-HSM":
		if len(rel.Material) == 0 {
			return nil, errors.New("empty key material")
		}
		b.str("kty", "oct")
		b.bytes("k", rel.Material)
	case "RSA", "RSA-HSM":
		priv, err := parseRSA(rel.Material)
		if err != nil {
			return nil, err
		}
		priv.Precompute()
		b.str("kty", "RSA")
		b.int("n", priv.N, 0)
		b.int("e", big.NewInt(int64(priv.E)), 0)
		b.int("d", priv.D, 0)
		b.int("p", priv.Primes[0], 0)
		b.int("q", priv.Primes[1], 0)
		b.int("dp", priv.Precomputed.Dp, 0)
		b.int("dq", priv.Precomputed.Dq, 0)
		b.int("qi", priv.Precomputed.Qinv, 0)
	case "EC", "EC-HSM":
		k, err := x509.ParsePKCS8PrivateKey(rel.Material)
		if err != nil {
			return nil, fmt.Errorf("EC key material is not PKCS#8: %w", err)
		}
		priv, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("EC key material holds a %T", k)
		}
		size := (priv.Curve.Params().BitSize + 7) / 8
		b.str("kty", "EC")
		b.str("crv", curveName(priv.Curve))
		b.int("x", priv.X, size)
		b.int("y", priv.Y, size)
		b.int("d", priv.D, size)
	default:
		return nil, fmt.Errorf("key type %q cannot be expressed as a JWK here (want oct, RSA or EC)", rel.Kty)
	}
	if len(rel.KeyOps) > 0 {
		ops, _ := json.Marshal(rel.KeyOps)
		b.raw("key_ops", ops)
	}
	if rel.Kid != "" {
		b.str("kid", rel.Kid)
	}
	return b.done(), nil
}

func parseRSA(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok && len(rk.Primes) == 2 {
			return rk, nil
		}
		return nil, errors.New("RSA key material is not a two-prime RSA key")
	}
	if rk, err := x509.ParsePKCS1PrivateKey(der); err == nil && len(rk.Primes) == 2 {
		return rk, nil
	}
	return nil, errors.New("RSA key material is neither PKCS#8 nor PKCS#1 DER")
}

func curveName(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "P-256"
	case elliptic.P384():
		return "P-384"
	case elliptic.P521():
		return "P-521"
	}
	return c.Params().Name
}

// jwkBuilder writes a JSON object of string members into one buffer, base64url-encoding binary
// members in place so that no copy of key material is left in an unzeroed string.
type jwkBuilder struct{ buf bytes.Buffer }

func (b *jwkBuilder) key(name string) {
	if b.buf.Len() == 0 {
		b.buf.WriteByte('{')
	} else {
		b.buf.WriteByte(',')
	}
	b.buf.WriteString(`"` + name + `":`)
}

func (b *jwkBuilder) str(name, v string) {
	q, _ := json.Marshal(v)
	b.raw(name, q)
}

func (b *jwkBuilder) raw(name string, v []byte) {
	b.key(name)
	b.buf.Write(v)
}

func (b *jwkBuilder) bytes(name string, v []byte) {
	b.key(name)
	enc := make([]byte, base64.RawURLEncoding.EncodedLen(len(v)))
	base64.RawURLEncoding.Encode(enc, v)
	b.buf.WriteByte('"')
	b.buf.Write(enc)
	b.buf.WriteByte('"')
	keys.Zero(enc)
}

// int writes a big integer big-endian, left-padded to size bytes when size is not 0 (EC
// coordinates have a fixed length).
func (b *jwkBuilder) int(name string, v *big.Int, size int) {
	n := (v.BitLen() + 7) / 8
	if size < n {
		size = n
	}
	if size == 0 {
		size = 1
	}
	raw := make([]byte, size)
	v.FillBytes(raw)
	b.bytes(name, raw)
	keys.Zero(raw)
}

// done closes the object and returns its bytes; buffer growth may have left earlier copies in
// memory that was freed, which a Go program cannot zero.
func (b *jwkBuilder) done() []byte {
	b.buf.WriteByte('}')
	return b.buf.Bytes()
}
