package jose

import (
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
	"testing"
)

func TestSignVerify(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Sign(Header{Alg: "RS256", Kid: "k"}, []byte(`{"a":1}`), key)
	if err != nil {
		t.Fatal(err)
	}
	j, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Verify(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	if string(j.Payload) != `{"a":1}` || j.Header.Kid != "k" {
		t.Fatalf("parsed %+v", j)
	}
	// Changing the payload must break the signature.
	parts := strings.Split(tok, ".")
	parts[1] = B64.EncodeToString([]byte(`{"a":2}`))
	j2, err := Parse(strings.Join(parts, "."))
	if err != nil {
		t.Fatal(err)
	}
	if err := j2.Verify(&key.PublicKey); err == nil {
		t.Fatal("tampered payload verified")
	}
	// alg none and HMAC are never accepted.
	for _, alg := range []string{"none", "HS256"} {
		j.Header.Alg = alg
		if err := j.Verify(&key.PublicKey); err == nil {
			t.Fatalf("alg %s accepted", alg)
		}
	}
}

func TestJWKRoundTrip(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwk := RSAPublicJWK(&key.PublicKey, "kid", "encrypt")
	pub, err := jwk.RSAPublicKey()
	if err != nil || !pub.Equal(&key.PublicKey) {
		t.Fatalf("round trip: %v", err)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := RSAPublicJWK(&small.PublicKey, "s").RSAPublicKey(); err == nil {
		t.Fatal("1024-bit key accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		j, err := Parse(s)
		if err != nil {
			return
		}
		key := &rsa.PublicKey{N: new(big.Int).SetInt64(0xFFFFFFFFFFFF), E: 65537}
		_ = j.Verify(key) // must not panic on any alg or signature length
	})
}
