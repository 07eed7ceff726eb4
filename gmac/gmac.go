// Package gmac computes GMAC (AES-GCM with an empty plaintext, NIST SP 800-38D) over the
// 4096-byte blocks of an encfs image: the leaf tags of its integrity tree.
//
// The result is exactly crypto/cipher's AES-GCM Seal(nil, nonce, nil, data) with a 12-byte
// nonce and a 16-byte tag. On amd64 CPUs with AVX-512 and VPCLMULQDQ, with an AES-256 key,
// data of up to 4096 bytes in whole 256-byte groups is tagged in assembly: every 16-byte block
// is multiplied by its own power of the hash key, four blocks per 512-bit instruction, and the
// products are summed and reduced once, so no multiplication waits on another (the standard
// library's GHASH takes 8 blocks at a time in 128-bit registers and reduces after each 8); the
// counter block is encrypted in the same call, from round keys expanded once. Other lengths,
// key sizes and CPUs use the standard library's AES-GCM.
package gmac

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"

	"github.com/encfs/encfs/internal/aeskey"
)

const (
	// NonceSize and TagSize are GCM's standard sizes.
	NonceSize = 12
	TagSize   = 16
	// groupSize is what the assembly takes per loop: 16 GHASH blocks; maxBlocks bounds the
	// blocks it takes in one call (one per precomputed power of H).
	groupSize = 256
	maxBlocks = 256
)

// MAC computes GMAC tags under one AES key. It is safe for concurrent use.
type MAC struct {
	gcm cipher.AEAD
	// powers holds H^256 ... H^1 in the form the assembly multiplies by, and rk the round
	// keys of K; both nil when the assembly is not used (CPU or key size).
	powers *[maxBlocks][16]byte
	rk     *[15][16]byte
}

// New returns a MAC for a 16-, 24- or 32-byte AES key.
func New(key []byte) (*MAC, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("gmac: %w", err)
	}
	gcm, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("gmac: %w", err)
	}
	m := &MAC{gcm: gcm}
	if useAsm && len(key) == 32 {
		var h [16]byte
		blk.Encrypt(h[:], h[:]) // the hash key H = E_K(0^128)
		m.powers = new([maxBlocks][16]byte)
		ghashPowers(&h, m.powers)
		clear(h[:])
		m.rk = new([15][16]byte)
		aeskey.Expand256(m.rk, key)
	}
	return m, nil
}

// Tag writes the GMAC of data under nonce to t.
func (m *MAC) Tag(t *[TagSize]byte, nonce *[NonceSize]byte, data []byte) {
	n := len(data) / 16
	if m.powers == nil || len(data) == 0 || len(data)%groupSize != 0 || n > maxBlocks {
		m.gcm.Seal(t[:0], nonce[:], nil, data)
		return
	}
	// tag = E_K(J0) XOR GHASH_H(data, lengths), J0 = nonce || 0^31 || 1
	copy(t[:], nonce[:])
	t[12], t[13], t[14], t[15] = 0, 0, 0, 1
	tag(&m.powers[maxBlocks-n], data, m.rk, t) // block i takes H^(n-i)
}
