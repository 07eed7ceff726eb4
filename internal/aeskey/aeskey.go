// Package aeskey expands AES-256 keys into their round keys (FIPS 197, section 5.2), for the
// assembly in package xts, which needs the round keys themselves: crypto/aes keeps its own
// private. Words are stored big-endian, the byte order AESENC expects.
//
// The expansion runs in constant time: the S-box is computed for each key byte (inverse in
// GF(2^8) by a fixed chain of branch-free multiplications, then the affine map), never looked
// up in a table indexed by key bytes, whose cache lines would leak the key to a co-resident
// observer.
package aeskey

import "encoding/binary"

// gfMul multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1 without branches or lookups that
// depend on a or b.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		b >>= 1
		a = a<<1 ^ 0x1b&-(a>>7)
	}
	return p
}

// gfInverse returns a^254, which is a^-1 for a != 0 and 0 for 0, by square-and-multiply over
// the public exponent 254 = 0b11111110.
func gfInverse(a byte) byte {
	r := byte(1)
	for bit := 7; bit >= 0; bit-- {
		r = gfMul(r, r)
		if 254>>bit&1 == 1 {
			r = gfMul(r, a)
		}
	}
	return r
}

func rotl8(b byte, n uint) byte { return b<<n | b>>(8-n) }

// sbox is the AES S-box (FIPS 197 section 5.1.1) of one byte, computed in constant time.
func sbox(x byte) byte {
	b := gfInverse(x)
	return b ^ rotl8(b, 1) ^ rotl8(b, 2) ^ rotl8(b, 3) ^ rotl8(b, 4) ^ 0x63
}

func subWord(w uint32) uint32 {
	return uint32(sbox(byte(w>>24)))<<24 | uint32(sbox(byte(w>>16)))<<16 |
		uint32(sbox(byte(w>>8)))<<8 | uint32(sbox(byte(w)))
}

// Expand256 writes the 15 round keys of a 32-byte AES key to rk.
func Expand256(rk *[15][16]byte, key []byte) {
	const nk = 8 // key words
	var w [60]uint32
	for i := range nk {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := nk; i < len(w); i++ {
		t := w[i-1]
		switch i % nk {
		case 0:
			t = subWord(t<<8|t>>24) ^ rcon<<24
			rcon = uint32(gfMul(byte(rcon), 2))
		case 4:
			t = subWord(t)
		}
		w[i] = w[i-nk] ^ t
	}
	for i, x := range w {
		binary.BigEndian.PutUint32(rk[i/4][4*(i%4):], x)
	}
}
