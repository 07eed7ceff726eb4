//go:build amd64 && !purego

package xts

import (
	"encoding/hex"
	"testing"
)

// TestExpandKey256 checks the key expansion against FIPS 197 Appendix A.3
// (the first and last round keys) and the outer keys of the inverse schedule.
// The IEEE 1619 vectors check every round key through the assembly.
func TestExpandKey256(t *testing.T) {
	key, _ := hex.DecodeString("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	var enc, dec [15][16]byte
	expandKey256(&enc, key)
	if got, want := hex.EncodeToString(enc[14][:]), "fe4890d1e6188d0b046df344706c631e"; got != want {
		t.Errorf("round key 14 = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(enc[0][:]), hex.EncodeToString(key[:16]); got != want {
		t.Errorf("round key 0 = %s, want %s", got, want)
	}
	inverseKeySchedule(&dec, &enc)
	if dec[0] != enc[14] || dec[14] != enc[0] {
		t.Error("outer decryption round keys are not the outer encryption keys swapped")
	}
}

// TestSbox spot-checks the computed S-box (FIPS 197 Figure 7) and that it is
// a permutation.
func TestSbox(t *testing.T) {
	for in, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16} {
		if sbox[in] != want {
			t.Errorf("sbox[%#x] = %#x, want %#x", in, sbox[in], want)
		}
	}
	var seen [256]bool
	for _, v := range sbox {
		seen[v] = true
	}
	for v, ok := range seen {
		if !ok {
			t.Fatalf("sbox never yields %#x", v)
		}
	}
}

// TestInvMixColumns inverts the well-known MixColumns test columns
// db135345 -> 8e4da1bc, f20a225c -> 9fdc589d, 01010101 and c6c6c6c6 (fixed).
func TestInvMixColumns(t *testing.T) {
	var k [16]byte
	in, _ := hex.DecodeString("8e4da1bc9fdc589d01010101c6c6c6c6")
	copy(k[:], in)
	invMixColumns(&k)
	if got, want := hex.EncodeToString(k[:]), "db135345f20a225c01010101c6c6c6c6"; got != want {
		t.Errorf("InvMixColumns = %s, want %s", got, want)
	}
}
