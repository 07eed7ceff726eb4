//go:build amd64 && !purego

package xts

import (
	"encoding/hex"
	"testing"

	"github.com/encfs/encfs/internal/aeskey"
)

// TestInverseKeySchedule checks the outer keys of the inverse schedule; the IEEE 1619 vectors
// check every round key through the assembly.
func TestInverseKeySchedule(t *testing.T) {
	key, _ := hex.DecodeString("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	var enc, dec [15][16]byte
	aeskey.Expand256(&enc, key)
	inverseKeySchedule(&dec, &enc)
	if dec[0] != enc[14] || dec[14] != enc[0] {
		t.Error("outer decryption round keys are not the outer encryption keys swapped")
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
