// Package kwp implements AES key wrap with padding (RFC 5649), the second half of Key Vault's
// CKM_RSA_AES_KEY_WRAP / RSA_AES_KEY_WRAP_* release formats. It is written from the RFC rather
// than taken from a library so that the unwrap path, which handles bytes from the network, stays
// small, constant-shaped and fuzzable.
package kwp

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// aiv is the RFC 5649 alternative initial value prefix (A65959A6), followed by the 32-bit
// big-endian message length indicator.
var aiv = [4]byte{0xA6, 0x59, 0x59, 0xA6}

// ErrIntegrity is returned when the unwrapped integrity check value does not match, which means a
// wrong key-encryption key or tampered ciphertext. It deliberately says nothing more.
var ErrIntegrity = errors.New("aes key unwrap: integrity check failed")

// Wrap wraps plaintext (1 byte or more) with the AES key kek (16, 24 or 32 bytes).
func Wrap(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("aes key wrap: %w", err)
	}
	if len(plaintext) == 0 || uint64(len(plaintext)) > 0xFFFFFFFF {
		return nil, fmt.Errorf("aes key wrap: plaintext length %d out of range", len(plaintext))
	}
	var a [8]byte
	copy(a[:4], aiv[:])
	binary.BigEndian.PutUint32(a[4:], uint32(len(plaintext)))
	padded := (len(plaintext) + 7) / 8 * 8
	if padded == 8 {
		// A single 64-bit block is encrypted once in ECB mode (RFC 5649 §4.1).
		var b [16]byte
		copy(b[:8], a[:])
		copy(b[8:], plaintext)
		block.Encrypt(b[:], b[:])
		return b[:], nil
	}
	out := make([]byte, 8+padded)
	copy(out[8:], plaintext)
	n := padded / 8
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], out[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^t)
			copy(out[8*i:], b[8:])
		}
	}
	copy(out[:8], a[:])
	clear(b[:])
	return out, nil
}

// Unwrap reverses Wrap. Every malformed input, including a wrong key, yields an error; the caller
// gets plaintext only when the RFC 5649 integrity check (AIV, length and zero padding) passes.
func Unwrap(kek, ciphertext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("aes key unwrap: %w", err)
	}
	if len(ciphertext) < 16 || len(ciphertext)%8 != 0 {
		return nil, fmt.Errorf("aes key unwrap: ciphertext length %d is not a multiple of 8 of at least 16", len(ciphertext))
	}
	n := len(ciphertext)/8 - 1
	var a [8]byte
	r := make([]byte, 8*n)
	var b [16]byte
	if n == 1 {
		block.Decrypt(b[:], ciphertext)
		copy(a[:], b[:8])
		copy(r, b[8:])
	} else {
		copy(a[:], ciphertext[:8])
		copy(r, ciphertext[8:])
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(b[8:], r[8*(i-1):8*i])
				block.Decrypt(b[:], b[:])
				copy(a[:], b[:8])
				copy(r[8*(i-1):], b[8:])
			}
		}
	}
	clear(b[:])
	if err := check(a, r); err != nil {
		clear(r)
		return nil, err
	}
	return r[:binary.BigEndian.Uint32(a[4:])], nil
}

// check applies the three RFC 5649 §3 integrity checks: the AIV prefix, a length indicator within
// the last 64-bit block, and zero padding.
func check(a [8]byte, r []byte) error {
	ok := subtle.ConstantTimeCompare(a[:4], aiv[:])
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli <= len(r)-8 || mli > len(r) {
		return ErrIntegrity
	}
	var pad byte
	for _, c := range r[mli:] {
		pad |= c
	}
	if ok != 1 || pad != 0 {
		return ErrIntegrity
	}
	return nil
}
