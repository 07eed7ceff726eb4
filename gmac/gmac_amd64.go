//go:build amd64 && !purego

package gmac

import "golang.org/x/sys/cpu"

// The assembly needs 512-bit VPCLMULQDQ and VPSHUFB (AVX512F, AVX512BW, VPCLMULQDQ).
var useAsm = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasPCLMULQDQ

// ghashPowers fills powers[i] with H^(256-i) from the hash key h = E_K(0), byte-reflected and
// multiplied by x, the form ghash multiplies by (as in the standard library's gcmAesInit).
//
//go:noescape
func ghashPowers(h *[16]byte, powers *[maxBlocks][16]byte)

// ghash writes GHASH_H(A = data, C = empty) to out: data, then the length block. len(data)
// must be a positive multiple of 256 of at most 4096 bytes, and powers must point at H^n for
// n = len(data)/16 in the table ghashPowers filled (the powers of H down to H^1 follow it).
//
//go:noescape
func ghash(powers *[16]byte, data []byte, out *[16]byte)
