//go:build amd64 && !purego

package gmac

import "golang.org/x/sys/cpu"

// The assembly needs 512-bit VPCLMULQDQ and VPSHUFB (AVX512F, AVX512BW, VPCLMULQDQ), and
// AES-NI with VEX encoding (VAESENC on XMM registers) for E_K(J0).
var useAsm = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPCLMULQDQ &&
	cpu.X86.HasPCLMULQDQ && cpu.X86.HasAES && cpu.X86.HasAVX

// ghashPowers fills powers[i] with H^(256-i) from the hash key h = E_K(0), byte-reflected and
// multiplied by x, the form tag multiplies by (as in the standard library's gcmAesInit).
//
//go:noescape
func ghashPowers(h *[16]byte, powers *[maxBlocks][16]byte)

// tag writes E_K(J0) XOR GHASH_H(A = data, C = empty) over tag, which holds J0 on entry; rk
// are the AES-256 round keys of K. len(data) must be a positive multiple of 256 of at most
// 4096 bytes, and powers must point at H^n for n = len(data)/16 in the table ghashPowers
// filled (the powers of H down to H^1 follow it).
//
//go:noescape
func tag(powers *[16]byte, data []byte, rk *[15][16]byte, tag *[16]byte)
