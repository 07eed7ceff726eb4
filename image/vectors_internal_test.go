package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// TestVectorKeySchedule checks the key schedule values in testdata/vectors/v2-small.json
// against the committed image: the keyslot keys, the derived keys, the first unit's leaf hash
// and the first block's plaintext. With -update it fills them in.
func TestVectorKeySchedule(t *testing.T) {
	jsonPath := filepath.Join("..", "testdata", "vectors", "v2-small.json")
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	hx := func(k string) []byte {
		s, _ := v[k].(string)
		out, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return out
	}
	release, master, salt := hx("release_key"), hx("master_key"), hx("salt")
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "vectors", "v2-small.img"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(raw)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := unwrapMasterKey(h, release)
	if err != nil || !ok || hex.EncodeToString(got) != hex.EncodeToString(master) {
		t.Fatalf("keyslot does not unwrap to the vector master key: ok=%v err=%v", ok, err)
	}
	k, _ := deriveKeys(master, salt)
	block0 := raw[contentOffset : contentOffset+BlockSize]
	leaf := newLeafHasher(&h.Salt).get().leafOf(raw[contentOffset : contentOffset+UnitSize])
	plain := make([]byte, BlockSize)
	k.xts.Decrypt(plain, block0, 0)
	computed := map[string]string{
		"keyslot_kek":             hex.EncodeToString(hkdfKey(release, salt, labelKeyslot, 32)),
		"keyslot_nonce_key":       hex.EncodeToString(hkdfKey(release, salt, labelKeyslotNonce, 32)),
		"xts_key":                 hex.EncodeToString(hkdfKey(master, salt, labelXTS, 64)),
		"header_mac_key":          hex.EncodeToString(k.headerMAC),
		"unit0_leaf":              hex.EncodeToString(leaf),
		"block0_plaintext_sha256": hex.EncodeToString(sha256Sum(plain)),
	}
	if !h.checkMAC(k.headerMAC) {
		t.Fatal("header MAC does not verify with the vector's header MAC key")
	}
	for name, want := range computed {
		if flagUpdate() {
			v[name] = want
			continue
		}
		if v[name] != want {
			t.Errorf("%s = %v, computed %s", name, v[name], want)
		}
	}
	if flagUpdate() {
		out, _ := json.MarshalIndent(v, "", "  ")
		os.WriteFile(jsonPath, append(out, '\n'), 0o644)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// flagUpdate reads the -update flag that vectors_test.go (package image_test) registers in the
// same test binary.
func flagUpdate() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}
