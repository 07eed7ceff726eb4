package keys

import (
	"crypto/hkdf"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/encfs/encfs/keys/internal/jose"
	"github.com/encfs/encfs/keys/internal/rsaaes"
)

// Key wrapping algorithms Key Vault can release with (the "enc" of a release request).
const (
	AlgCKMRSAAESKeyWrap = rsaaes.CKMRSAAESKeyWrap // RSA-OAEP-SHA1 + AES-KWP
	AlgRSAAESKeyWrap256 = rsaaes.RSAAESKeyWrap256 // RSA-OAEP-SHA256 + AES-KWP
	AlgRSAAESKeyWrap384 = rsaaes.RSAAESKeyWrap384 // RSA-OAEP-SHA384 + AES-KWP
)

// DefaultDerivationLabel is the HKDF info the reference sidecar uses to turn an RSA-HSM key into a
// symmetric key.
const DefaultDerivationLabel = "Symmetric Encryption Key"

// releasedKey is the part of Key Vault's release payload this package uses.
type releasedKey struct {
	Kid    string
	Kty    string
	KeyOps []string
	KeyHSM []byte // decoded key_hsm JSON
	Nonce  string // request.nonce, as the vault echoes the request it answered
}

// checkReleaseMatches refuses a verified release response that answers another request: another
// nonce (a replayed response) or another key than the one asked for (name, and version when
// one was configured). The kid is https://{vault}/keys/{name}/{version}.
func checkReleaseMatches(payload []byte, nonce, name, version string) error {
	rel, err := parseReleasePayload(payload)
	if err != nil {
		return err
	}
	if rel.Nonce != nonce {
		return fmt.Errorf("the release response answers another request (nonce %q, this request sent %q): a replayed or misrouted response", rel.Nonce, nonce)
	}
	u, err := url.Parse(rel.Kid)
	parts := strings.Split(strings.Trim(u.EscapedPath(), "/"), "/")
	if err != nil || len(parts) < 2 || parts[0] != "keys" {
		return fmt.Errorf("the released key's kid %q is not a Key Vault key identifier", rel.Kid)
	}
	if !strings.EqualFold(parts[1], name) || (version != "" && (len(parts) < 3 || !strings.EqualFold(parts[2], version))) {
		return fmt.Errorf("the vault released key %q, but key %q (version %q) was requested", rel.Kid, name, version)
	}
	return nil
}

// parseReleasePayload reads request.nonce and response.key.key {kid, kty, key_ops, key_hsm} of
// the release payload.
func parseReleasePayload(payload []byte) (*releasedKey, error) {
	var p struct {
		Request struct {
			Nonce string `json:"nonce"`
		} `json:"request"`
		Response struct {
			Key struct {
				Key struct {
					Kid    string   `json:"kid"`
					Kty    string   `json:"kty"`
					KeyOps []string `json:"key_ops"`
					KeyHSM string   `json:"key_hsm"`
				} `json:"key"`
			} `json:"key"`
		} `json:"response"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("release payload: %w", err)
	}
	k := p.Response.Key.Key
	if k.KeyHSM == "" {
		return nil, errors.New("release payload: response.key.key.key_hsm is missing")
	}
	blob, err := jose.B64.DecodeString(k.KeyHSM)
	if err != nil {
		return nil, fmt.Errorf("release payload: key_hsm: %w", err)
	}
	return &releasedKey{Kid: k.Kid, Kty: k.Kty, KeyOps: k.KeyOps, KeyHSM: blob, Nonce: p.Request.Nonce}, nil
}

// parseKeyHSM reads the key_hsm blob {"schema_version","header":{"kid","alg","enc"},"ciphertext"}.
func parseKeyHSM(blob []byte) (enc string, ciphertext []byte, err error) {
	var h struct {
		SchemaVersion string `json:"schema_version"`
		Header        struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Enc string `json:"enc"`
		} `json:"header"`
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.Unmarshal(blob, &h); err != nil {
		return "", nil, fmt.Errorf("key_hsm: %w", err)
	}
	if ciphertext, err = jose.B64.DecodeString(h.Ciphertext); err != nil {
		return "", nil, fmt.Errorf("key_hsm ciphertext: %w", err)
	}
	if len(ciphertext) == 0 {
		return "", nil, errors.New("key_hsm: empty ciphertext")
	}
	return h.Header.Enc, ciphertext, nil
}

// KeyDerivation turns an RSA-HSM release key into 32 symmetric bytes, as the reference sidecar's
// key_derivation does.
type KeyDerivation struct {
	Salt  string // hex
	Label string // HKDF info; DefaultDerivationLabel when empty
}

// releaseKeyFromMaterial makes the 32-byte release key from unwrapped key material: oct keys are
// used as they are; RSA keys (PKCS#8 DER) go through HKDF-SHA256 over the private exponent.
func releaseKeyFromMaterial(kty string, material []byte, kd KeyDerivation) ([]byte, error) {
	switch kty {
	case "oct", "oct-HSM":
		if len(material) != KeySize {
			return nil, fmt.Errorf("released %s key holds %d bytes, want %d", kty, len(material), KeySize)
		}
		return append([]byte(nil), material...), nil
	case "RSA", "RSA-HSM":
		priv, err := parseRSAPrivate(material)
		if err != nil {
			return nil, err
		}
		d := priv.D.Bytes()
		defer Zero(d)
		return DeriveFromRSA(d, kd)
	}
	return nil, fmt.Errorf("released key type %q cannot be a release key (want oct, oct-HSM or RSA-HSM)", kty)
}

// DeriveFromRSA is HKDF-SHA256(secret = the RSA private exponent's big-endian bytes, salt =
// hex-decoded kd.Salt, info = kd.Label), 32 bytes.
func DeriveFromRSA(d []byte, kd KeyDerivation) ([]byte, error) {
	salt, err := hex.DecodeString(kd.Salt)
	if err != nil {
		return nil, fmt.Errorf("key_derivation salt is not hex: %w", err)
	}
	label := kd.Label
	if label == "" {
		label = DefaultDerivationLabel
	}
	return hkdf.Key(sha256.New, d, salt, label, KeySize)
}

func parseRSAPrivate(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, fmt.Errorf("released key is a %T, not RSA", k)
	}
	if rk, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return rk, nil
	}
	return nil, errors.New("released RSA key material is neither PKCS#8 nor PKCS#1 DER")
}
