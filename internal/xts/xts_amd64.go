//go:build amd64 && !purego

package xts

import (
	"golang.org/x/sys/cpu"

	"github.com/encfs/encfs/internal/aeskey"
)

// The assembly in xts_amd64.s has three paths, fastest first: VAES with
// AVX-512 (16 blocks per loop in four 512-bit registers), VAES with AVX2 (16
// blocks per loop in eight 256-bit registers; AMD Zen 3 has VAES but no
// AVX-512) and AES-NI (8 blocks per loop in XMM registers) for CPUs without
// VAES. All take the expanded key schedules of asmKeys and compute the tweaks
// themselves.

// asmKeys holds the AES-256 key schedules the assembly uses: 15 round keys
// each. Its layout is read by xts_amd64.s.
type asmKeys struct {
	enc   [15][16]byte // data key, for AESENC
	dec   [15][16]byte // data key in reverse with InvMixColumns, for AESDEC
	tweak [15][16]byte // tweak key, for AESENC
	// enc2 and dec2 repeat each round key of enc and dec twice, so that
	// the AVX2 path, which has no register to spare for keys, can take them
	// as 256-bit memory operands.
	enc2, dec2 [15][32]byte
}

func (k *asmKeys) expand(key []byte) {
	aeskey.Expand256(&k.enc, key[:32])
	aeskey.Expand256(&k.tweak, key[32:])
	inverseKeySchedule(&k.dec, &k.enc)
	for i := range k.enc {
		copy(k.enc2[i][:16], k.enc[i][:])
		copy(k.enc2[i][16:], k.enc[i][:])
		copy(k.dec2[i][:16], k.dec[i][:])
		copy(k.dec2[i][16:], k.dec[i][:])
	}
}

// inverseKeySchedule derives the round keys of the "equivalent inverse
// cipher" (FIPS 197 section 5.3.5) that AESDEC implements: the encryption
// keys in reverse order, the inner ones passed through InvMixColumns.
func inverseKeySchedule(dec, enc *[15][16]byte) {
	dec[0], dec[14] = enc[14], enc[0]
	for i := 1; i < 14; i++ {
		dec[i] = enc[14-i]
		invMixColumns(&dec[i])
	}
}

var (
	hasAESNI = cpu.X86.HasAES
	// VPSLLDQ/VPSRLDQ on 512-bit registers and the opmask moves are AVX512BW.
	hasVAES512 = hasAESNI && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW &&
		cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ
	hasVAES256 = hasAESNI && cpu.X86.HasAVX2 && hasVAESVPCLMULQDQ()
)

// hasVAESVPCLMULQDQ reads the VAES and VPCLMULQDQ bits of CPUID leaf 7
// itself: golang.org/x/sys/cpu reports them only on CPUs with AVX-512, but
// their 256-bit forms need only AVX (whose OS support HasAVX2 includes).
func hasVAESVPCLMULQDQ() bool {
	const vaes, vpclmulqdq = 1 << 9, 1 << 10
	_, _, ecx, _ := cpuid(7, 0)
	return ecx&vaes != 0 && ecx&vpclmulqdq != 0
}

func bestImpl() implementation {
	switch {
	case hasVAES512:
		return implVAES512
	case hasVAES256:
		return implVAES256
	case hasAESNI:
		return implAESNI
	}
	return implGeneric
}

func supportedImpls() []implementation {
	impls := []implementation{implGeneric}
	if hasAESNI {
		impls = append(impls, implAESNI)
	}
	if hasVAES256 {
		impls = append(impls, implVAES256)
	}
	if hasVAES512 {
		impls = append(impls, implVAES512)
	}
	return impls
}

func encryptSector(c *Cipher, dst, src []byte, sector uint64) {
	switch impl {
	case implVAES512:
		encryptVAES512(&c.asm.enc, &c.asm.tweak, dst, src, sector)
	case implVAES256:
		encryptVAES256(&c.asm.enc2, &c.asm.tweak, dst, src, sector)
	case implAESNI:
		encryptAESNI(&c.asm.enc, &c.asm.tweak, dst, src, sector)
	default:
		c.encryptGeneric(dst, src, sector)
	}
}

func decryptSector(c *Cipher, dst, src []byte, sector uint64) {
	switch impl {
	case implVAES512:
		decryptVAES512(&c.asm.dec, &c.asm.tweak, dst, src, sector)
	case implVAES256:
		decryptVAES256(&c.asm.dec2, &c.asm.tweak, dst, src, sector)
	case implAESNI:
		decryptAESNI(&c.asm.dec, &c.asm.tweak, dst, src, sector)
	default:
		c.decryptGeneric(dst, src, sector)
	}
}

// The assembly functions process len(src) bytes (a non-zero multiple of 16,
// checked by the caller) from src to dst with data round keys rk; tk is the
// tweak key schedule.

//go:noescape
func encryptVAES512(rk, tk *[15][16]byte, dst, src []byte, sector uint64)

//go:noescape
func decryptVAES512(rk, tk *[15][16]byte, dst, src []byte, sector uint64)

//go:noescape
func encryptVAES256(rk *[15][32]byte, tk *[15][16]byte, dst, src []byte, sector uint64)

//go:noescape
func decryptVAES256(rk *[15][32]byte, tk *[15][16]byte, dst, src []byte, sector uint64)

//go:noescape
func encryptAESNI(rk, tk *[15][16]byte, dst, src []byte, sector uint64)

//go:noescape
func decryptAESNI(rk, tk *[15][16]byte, dst, src []byte, sector uint64)

//go:noescape
func invMixColumns(k *[16]byte)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
