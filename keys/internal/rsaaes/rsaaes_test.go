package rsaaes

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

func TestRoundTripAndTamper(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	material := bytes.Repeat([]byte{0x5a}, 32)
	for _, alg := range []string{CKMRSAAESKeyWrap, RSAAESKeyWrap256, RSAAESKeyWrap384} {
		ct, err := Wrap(&priv.PublicKey, alg, material)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unwrap(priv, alg, ct)
		if err != nil || !bytes.Equal(got, material) {
			t.Fatalf("%s: round trip %x, %v", alg, got, err)
		}
		for _, i := range []int{0, 255, 256, len(ct) - 1} {
			bad := bytes.Clone(ct)
			bad[i] ^= 1
			if _, err := Unwrap(priv, alg, bad); err == nil {
				t.Fatalf("%s: byte %d flipped, unwrap succeeded", alg, i)
			}
		}
		if _, err := Unwrap(other, alg, ct); err == nil {
			t.Fatalf("%s: unwrapped with another key", alg)
		}
	}
	ct, _ := Wrap(&priv.PublicKey, CKMRSAAESKeyWrap, material)
	if _, err := Unwrap(priv, RSAAESKeyWrap256, ct); err == nil {
		t.Fatal("SHA-1 OAEP unwrapped as SHA-256")
	}
	if _, err := Wrap(&priv.PublicKey, "RSA1_5", material); err == nil {
		t.Fatal("unknown algorithm accepted")
	}
}
