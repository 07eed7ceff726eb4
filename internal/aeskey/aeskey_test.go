package aeskey

import (
	"encoding/hex"
	"testing"
)

// TestExpand256 checks the key expansion against FIPS 197 Appendix A.3 (the first and last
// round keys; every other one feeds the last). Package xts checks every round key
// through their assembly against the standard library.
func TestExpand256(t *testing.T) {
	key, _ := hex.DecodeString("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	var rk [15][16]byte
	Expand256(&rk, key)
	if got, want := hex.EncodeToString(rk[14][:]), "fe4890d1e6188d0b046df344706c631e"; got != want {
		t.Errorf("round key 14 = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(rk[0][:]), hex.EncodeToString(key[:16]); got != want {
		t.Errorf("round key 0 = %s, want %s", got, want)
	}
	if got, want := hex.EncodeToString(rk[1][:]), hex.EncodeToString(key[16:]); got != want {
		t.Errorf("round key 1 = %s, want %s", got, want)
	}
}

// TestSbox spot-checks the computed S-box (FIPS 197 Figure 7) and that it is a permutation.
func TestSbox(t *testing.T) {
	for in, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16} {
		if got := sbox(in); got != want {
			t.Errorf("sbox(%#x) = %#x, want %#x", in, got, want)
		}
	}
	var seen [256]bool
	for x := range 256 {
		seen[sbox(byte(x))] = true
	}
	for v, ok := range seen {
		if !ok {
			t.Fatalf("sbox never yields %#x", v)
		}
	}
}
