package xts

import "encoding/binary"

// The XTS tweak of block i of a sector is T·x^i in GF(2^128) modulo
// x^128 + x^7 + x^2 + x + 1, where T is the encrypted sector number. IEEE 1619
// reads the 16 tweak bytes as a little-endian 128-bit number, so multiplying
// by x is a one-bit left shift with the bit shifted out folded back in as
// 0x87. The portable path keeps 128-bit values as two uint64 halves; the
// assembly does the same shift in vector registers (see xts_amd64.s).

// tweak is a 128-bit value (a tweak or a data block) as little-endian halves:
// lo holds bytes 0-7.
type tweak struct{ lo, hi uint64 }

func loadTweak(b []byte) tweak {
	return tweak{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:16])}
}

func (t tweak) store(b []byte) {
	binary.LittleEndian.PutUint64(b[:8], t.lo)
	binary.LittleEndian.PutUint64(b[8:16], t.hi)
}

func (t tweak) xor(u tweak) tweak { return tweak{t.lo ^ u.lo, t.hi ^ u.hi} }

// mulX returns t·x.
func (t tweak) mulX() tweak {
	carry := t.hi >> 63
	return tweak{
		lo: t.lo<<1 ^ 0x87&-carry,
		hi: t.hi<<1 | t.lo>>63,
	}
}
