package xts

import "encoding/binary"

// The portable path calls crypto/aes once per block, as x/crypto/xts does,
// but without its per-block slice XORs and tweak byte loop, so it is faster
// only by overhead: a single AES block costs its full latency, which no
// pure-Go code can overlap with the next block. The standard
// library has no batched AES that takes arbitrary blocks on amd64 or arm64:
// CTR and GCM encrypt counters, and CBC decryption (the XTS decryption trick
// D(Y_i) = CBC-decrypt(Y)_i XOR Y_{i-1}) loops over single blocks there, so
// it measured slower than this loop (docs/PERFORMANCE.md, "XTS in Go assembly").

func (c *Cipher) encryptGeneric(dst, src []byte, sector uint64) {
	c.cryptGeneric(dst, src, sector, false)
}

func (c *Cipher) decryptGeneric(dst, src []byte, sector uint64) {
	c.cryptGeneric(dst, src, sector, true)
}

func (c *Cipher) cryptGeneric(dst, src []byte, sector uint64, decrypt bool) {
	// dst[:16] is scratch for the first tweak (a local array would escape
	// through the cipher.Block interface and allocate), so read block 0
	// first: dst may be src.
	b := loadTweak(src)
	binary.LittleEndian.PutUint64(dst[:8], sector)
	clear(dst[8:16])
	c.tweak.Encrypt(dst[:16], dst[:16])
	t := loadTweak(dst)
	for i := 0; ; {
		d := dst[i : i+blockSize]
		b.xor(t).store(d)
		if decrypt {
			c.data.Decrypt(d, d)
		} else {
			c.data.Encrypt(d, d)
		}
		loadTweak(d).xor(t).store(d)
		if i += blockSize; i == len(src) {
			return
		}
		b = loadTweak(src[i:])
		t = t.mulX()
	}
}
