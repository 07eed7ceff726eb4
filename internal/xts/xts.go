// Package xts implements AES-256-XTS (IEEE 1619) for the image format's data
// units: it encrypts and decrypts whole sectors, fast.
//
// The output is byte for byte that of golang.org/x/crypto/xts with an AES-256
// cipher: the key is the data key followed by the tweak key, the tweak is the
// sector number as a 16-byte little-endian value, and there is no ciphertext
// stealing (lengths are multiples of 16). x/crypto/xts calls the block cipher
// once per 16 bytes; this package keeps many blocks in flight in assembly on
// amd64 (VAES with AVX-512 or AVX2 where present, else AES-NI) and elsewhere, or with
// the purego build tag, calls crypto/aes per block with less overhead than
// x/crypto/xts.
//
// Reading order: xts.go (API), gf128.go (tweak arithmetic), xts_generic.go
// (portable path), xts_amd64.go (CPU dispatch), xts_amd64.s (assembly),
// aeskeys_amd64.go (key schedules for it), xts_noasm.go (dispatch without it).
package xts

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"unsafe"
)

// KeySize is the length of the key passed to NewCipher: an AES-256 data key
// followed by an AES-256 tweak key.
const KeySize = 64

// blockSize is the AES block size; sector lengths are multiples of it.
const blockSize = 16

// Cipher encrypts and decrypts sectors with one XTS key. It is safe for
// concurrent use, and Encrypt and Decrypt do not allocate.
type Cipher struct {
	// data and tweak are the crypto/aes ciphers of the two key halves, for
	// the portable path.
	data, tweak cipher.Block
	// asm holds the expanded key schedules for the assembly paths; its type
	// is empty on architectures without them.
	asm asmKeys
}

// NewCipher returns a Cipher for a 64-byte key: the AES-256 data key (first
// 32 bytes) followed by the AES-256 tweak key (last 32 bytes), as
// golang.org/x/crypto/xts.NewCipher(aes.NewCipher, key) splits it.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, errors.New("xts: key must be 64 bytes (AES-256 data key || AES-256 tweak key)")
	}
	data, err := aes.NewCipher(key[:32])
	if err != nil {
		return nil, err
	}
	tweak, err := aes.NewCipher(key[32:])
	if err != nil {
		return nil, err
	}
	c := &Cipher{data: data, tweak: tweak}
	c.asm.expand(key)
	return c, nil
}

// Encrypt encrypts one sector from src into dst. len(src) must be a non-zero
// multiple of 16 and len(dst) at least len(src); dst and src must be the same
// slice or not overlap. It panics otherwise.
func (c *Cipher) Encrypt(dst, src []byte, sector uint64) {
	encryptSector(c, checkSector(dst, src), src, sector)
}

// Decrypt decrypts one sector from src into dst, under the same rules as
// Encrypt.
func (c *Cipher) Decrypt(dst, src []byte, sector uint64) {
	decryptSector(c, checkSector(dst, src), src, sector)
}

// checkSector panics on lengths or overlaps that are programming errors and
// returns dst cut to len(src), so the paths below never write past it.
func checkSector(dst, src []byte) []byte {
	if len(src) == 0 || len(src)%blockSize != 0 {
		panic("xts: sector length is not a non-zero multiple of 16")
	}
	if len(dst) < len(src) {
		panic("xts: dst is shorter than src")
	}
	dst = dst[:len(src)]
	if inexactOverlap(dst, src) {
		panic("xts: dst and src overlap but are not the same slice")
	}
	return dst
}

// inexactOverlap reports whether the non-empty x and y share memory without
// starting at the same address (the in-place case, which is allowed).
func inexactOverlap(x, y []byte) bool {
	x0, xn := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&x[len(x)-1]))
	y0, yn := uintptr(unsafe.Pointer(&y[0])), uintptr(unsafe.Pointer(&y[len(y)-1]))
	return x0 != y0 && x0 <= yn && y0 <= xn
}

// implementation names a code path; impl selects the one encryptSector and
// decryptSector (per architecture) dispatch to. It is set once at init from
// the CPU features and changed only by tests, which run every path that
// supportedImpls lists.
type implementation int

const (
	implGeneric implementation = iota // crypto/aes per block, any architecture
	implAESNI                         // amd64 AES-NI, 8 blocks in flight
	implVAES256                       // amd64 VAES + AVX2, 2 blocks per register
	implVAES512                       // amd64 VAES + AVX-512, 4 blocks per register
)

func (i implementation) String() string {
	switch i {
	case implAESNI:
		return "aesni"
	case implVAES256:
		return "vaes256"
	case implVAES512:
		return "vaes512"
	}
	return "generic"
}

var impl = bestImpl()
