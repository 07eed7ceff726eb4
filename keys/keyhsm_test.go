package keys

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/encfs/encfs/keys/internal/jose"
)

// RFC 5869 test case 1 (SHA-256), first 32 bytes of the OKM.
func TestDeriveFromRSAIsHKDFSHA256(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	info := string([]byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9})
	got, err := DeriveFromRSA(ikm, KeyDerivation{Salt: "000102030405060708090a0b0c", Label: info})
	if err != nil {
		t.Fatal(err)
	}
	if want := "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"; hex.EncodeToString(got) != want {
		t.Fatalf("got %x, want %s", got, want)
	}
	def, _ := DeriveFromRSA(ikm, KeyDerivation{Salt: "00"})
	lab, _ := DeriveFromRSA(ikm, KeyDerivation{Salt: "00", Label: "Symmetric Encryption Key"})
	if !bytes.Equal(def, lab) {
		t.Fatal("empty label is not the reference default label")
	}
	if _, err := DeriveFromRSA(ikm, KeyDerivation{Salt: "zz"}); err == nil {
		t.Fatal("non-hex salt accepted")
	}
}

func TestReleaseKeyFromMaterial(t *testing.T) {
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	kd := KeyDerivation{Salt: "a1b2"}
	got, err := releaseKeyFromMaterial("RSA-HSM", der, kd)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := DeriveFromRSA(priv.D.Bytes(), kd)
	if !bytes.Equal(got, want) || len(got) != KeySize {
		t.Fatal("RSA-HSM derivation differs from HKDF over D")
	}
	oct := bytes.Repeat([]byte{1}, 32)
	if k, err := releaseKeyFromMaterial("oct-HSM", oct, kd); err != nil || !bytes.Equal(k, oct) {
		t.Fatalf("oct-HSM: %x %v", k, err)
	}
	if _, err := releaseKeyFromMaterial("oct", oct[:16], kd); err == nil {
		t.Fatal("16-byte oct key accepted")
	}
	if _, err := releaseKeyFromMaterial("EC-HSM", oct, kd); err == nil {
		t.Fatal("EC key accepted")
	}
}

func samplePayload() []byte {
	keyHSM, _ := json.Marshal(map[string]any{"schema_version": "1.0", "header": map[string]string{"kid": "k", "alg": "dir", "enc": AlgCKMRSAAESKeyWrap},
		"ciphertext": jose.B64.EncodeToString(bytes.Repeat([]byte{7}, 296))})
	p, _ := json.Marshal(map[string]any{"request": map[string]any{"nonce": "n"}, "response": map[string]any{"key": map[string]any{
		"key": map[string]any{"kid": "https://v/keys/k/1", "kty": "oct-HSM", "key_hsm": jose.B64.EncodeToString(keyHSM)}}}})
	return p
}

func TestParseReleasePayload(t *testing.T) {
	rel, err := parseReleasePayload(samplePayload())
	if err != nil {
		t.Fatal(err)
	}
	enc, ct, err := parseKeyHSM(rel.KeyHSM)
	if err != nil || enc != AlgCKMRSAAESKeyWrap || len(ct) != 296 || rel.Kty != "oct-HSM" {
		t.Fatalf("parsed %+v %q %d %v", rel, enc, len(ct), err)
	}
	for _, bad := range []string{`{}`, `{"response":{"key":{"key":{"key_hsm":"!!"}}}}`, `[]`, ``} {
		if _, err := parseReleasePayload([]byte(bad)); err == nil {
			t.Errorf("payload %q accepted", bad)
		}
	}
	for _, bad := range []string{`{}`, `{"ciphertext":"!"}`, `{"ciphertext":""}`, `x`} {
		if _, _, err := parseKeyHSM([]byte(bad)); err == nil {
			t.Errorf("key_hsm %q accepted", bad)
		}
	}
}

// FuzzReleasePayload feeds Key Vault's payload and key_hsm parsers, then the unwrap, arbitrary
// bytes: none may panic, and nothing but a correctly wrapped key may come out.
func FuzzReleasePayload(f *testing.F) {
	f.Add(samplePayload())
	f.Add([]byte(`{"response":{"key":{"key":{"kty":"RSA-HSM","key_hsm":"e30"}}}}`))
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	f.Fuzz(func(t *testing.T, payload []byte) {
		rel, err := parseReleasePayload(payload)
		if err != nil {
			return
		}
		_, ct, err := parseKeyHSM(rel.KeyHSM)
		if err != nil {
			return
		}
		p := &AzureSKR{cfg: AzureSKRConfig{Algorithm: AlgCKMRSAAESKeyWrap}}
		if k, err := p.unwrap(&runtimeKey{priv: priv}, payload); err == nil {
			t.Fatalf("random ciphertext of %d bytes unwrapped to %d bytes", len(ct), len(k.Material))
		}
	})
}
