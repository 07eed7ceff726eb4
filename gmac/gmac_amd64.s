//go:build amd64 && !purego

#include "textflag.h"

// GHASH in the representation of the standard library's gcm_amd64.s (and of Intel's
// carry-less multiplication white paper): blocks are byte-reflected with VPSHUFB, H is stored
// multiplied by x, so that a 256-bit carry-less product reduces with two multiplications by
// the constant gcmPoly and no bit shift. Products are computed schoolbook (four VPCLMULQDQ per
// block pair) and summed unreduced over 16 blocks, then reduced once.

DATA bswapMask<>+0x00(SB)/8, $0x08090a0b0c0d0e0f
DATA bswapMask<>+0x08(SB)/8, $0x0001020304050607
GLOBL bswapMask<>(SB), (NOPTR+RODATA), $16

DATA gcmPoly<>+0x00(SB)/8, $0x0000000000000001
DATA gcmPoly<>+0x08(SB)/8, $0xc200000000000000
GLOBL gcmPoly<>(SB), (NOPTR+RODATA), $16

// MUL sets A = A * B (reduced) for 128-bit values in XMM registers, with X14 = gcmPoly and
// X4-X7 as scratch.
#define MUL(A, B) \
	VPCLMULQDQ $0x00, B, A, X4 \
	VPCLMULQDQ $0x11, B, A, X5 \
	VPCLMULQDQ $0x01, B, A, X6 \
	VPCLMULQDQ $0x10, B, A, X7 \
	VPXOR      X7, X6, X6      \
	VPSLLDQ    $8, X6, X7      \
	VPSRLDQ    $8, X6, X6      \
	VPXOR      X7, X4, X4      \
	VPXOR      X6, X5, X5      \
	REDUCE(X4, X6)             \
	VPXOR      X5, X4, A

// REDUCE folds the low 128 bits of a 256-bit product (lo in L; the caller XORs in the high
// half afterwards), with X14 = gcmPoly and T as scratch.
#define REDUCE(L, T) \
	VPCLMULQDQ $0x01, L, X14, T \
	VPSHUFD    $78, L, L        \
	VPXOR      T, L, L          \
	VPCLMULQDQ $0x01, L, X14, T \
	VPSHUFD    $78, L, L        \
	VPXOR      T, L, L

// func ghashPowers(h *[16]byte, powers *[maxBlocks][16]byte)
TEXT ·ghashPowers(SB), NOSPLIT, $0-16
	MOVQ h+0(FP), AX
	MOVQ powers+8(FP), DI
	VMOVDQU bswapMask<>(SB), X15
	VMOVDQU gcmPoly<>(SB), X14
	VMOVDQU (AX), X0
	VPSHUFB X15, X0, X0

	// H * x: shift the 128-bit value left by one, reducing if the top bit falls out.
	VPSHUFD $0xff, X0, X1
	VPSRAD  $31, X1, X1
	VPAND   X14, X1, X1
	VPSRLD  $31, X0, X2
	VPSLLDQ $4, X2, X2
	VPSLLD  $1, X0, X0
	VPXOR   X1, X0, X0
	VPXOR   X2, X0, X0

	// powers[255] = H, powers[254] = H^2, ..., powers[0] = H^256
	VMOVDQU X0, (255*16)(DI)
	VMOVDQA X0, X3
	MOVQ    $255, CX
	LEAQ    (254*16)(DI), DI

powersLoop:
	MUL(X3, X0)
	VMOVDQU X3, (DI)
	SUBQ    $16, DI
	DECQ    CX
	JNE     powersLoop

	VPXOR X0, X0, X0
	VPXOR X1, X1, X1
	VPXOR X2, X2, X2
	VPXOR X3, X3, X3
	VZEROUPPER
	RET

// ACCUMULATE adds the unreduced products of the four blocks in D and the four powers at
// off(DI) to lo (Z5), hi (Z6) and middle (Z7), with Z8-Z11 as scratch.
#define ACCUMULATE(D, off) \
	VMOVDQU64  off(DI), Z12           \
	VPCLMULQDQ $0x00, Z12, D, Z8      \
	VPCLMULQDQ $0x11, Z12, D, Z9      \
	VPCLMULQDQ $0x01, Z12, D, Z10     \
	VPCLMULQDQ $0x10, Z12, D, Z11     \
	VPXORQ     Z8, Z5, Z5             \
	VPXORQ     Z9, Z6, Z6             \
	VPTERNLOGQ $0x96, Z11, Z10, Z7

// func tag(powers *[16]byte, data []byte, rk *[15][16]byte, tag *[16]byte)
//
// GMAC of data under the AES-256 round keys rk: tag holds the counter block J0 on entry and
// E_K(J0) XOR GHASH(data) on return. GHASH of n = len(data)/16 blocks and the length block is
// computed by full aggregation: block i (from 0) is multiplied by H^(n-i), taken from powers
// (which points at that power of the first block), the products are summed unreduced and
// reduced once; then the length block is added and the sum multiplied by H. No step waits on
// the one before, so the multiplier runs at its throughput, not its latency. E_K(J0) is
// computed first in X13, which the loop leaves alone, so its rounds overlap the hashing.
TEXT ·tag(SB), NOSPLIT, $0-48
	MOVQ powers+0(FP), DI
	MOVQ data_base+8(FP), SI
	MOVQ data_len+16(FP), DX
	MOVQ rk+32(FP), R9
	MOVQ tag+40(FP), R8
	MOVQ DX, CX

	VMOVDQU     (R8), X13
	VPXOR       (R9), X13, X13
	VAESENC     16(R9), X13, X13
	VAESENC     32(R9), X13, X13
	VAESENC     48(R9), X13, X13
	VAESENC     64(R9), X13, X13
	VAESENC     80(R9), X13, X13
	VAESENC     96(R9), X13, X13
	VAESENC     112(R9), X13, X13
	VAESENC     128(R9), X13, X13
	VAESENC     144(R9), X13, X13
	VAESENC     160(R9), X13, X13
	VAESENC     176(R9), X13, X13
	VAESENC     192(R9), X13, X13
	VAESENC     208(R9), X13, X13
	VAESENCLAST 224(R9), X13, X13

	VBROADCASTI32X4 bswapMask<>(SB), Z31
	VMOVDQU gcmPoly<>(SB), X14
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7

groupLoop:
	// Ask for the same 256 bytes two 4 KiB blocks ahead. On the read path the data was just
	// written by a disk or a socket and is not in any cache, and the hardware prefetcher stops
	// at every 4 KiB page edge, so each block would start with a run of misses; the caller
	// decrypts after hashing, which leaves these loads time to land. A prefetch past the end
	// of data is harmless: it never faults. (BenchmarkVerifyDecryptCold in package image.)
	PREFETCHT0 8192(SI)
	PREFETCHT0 8256(SI)
	PREFETCHT0 8320(SI)
	PREFETCHT0 8384(SI)
	VMOVDQU64 0(SI), Z1
	VMOVDQU64 64(SI), Z2
	VMOVDQU64 128(SI), Z3
	VMOVDQU64 192(SI), Z4
	VPSHUFB   Z31, Z1, Z1
	VPSHUFB   Z31, Z2, Z2
	VPSHUFB   Z31, Z3, Z3
	VPSHUFB   Z31, Z4, Z4
	ACCUMULATE(Z1, 0)
	ACCUMULATE(Z2, 64)
	ACCUMULATE(Z3, 128)
	ACCUMULATE(Z4, 192)
	ADDQ $256, SI
	ADDQ $256, DI
	SUBQ $256, DX
	JNZ  groupLoop

	// Sum the four lanes of each.
	VEXTRACTI64X4 $1, Z5, Y8
	VEXTRACTI64X4 $1, Z6, Y9
	VEXTRACTI64X4 $1, Z7, Y10
	VPXOR         Y8, Y5, Y5
	VPXOR         Y9, Y6, Y6
	VPXOR         Y10, Y7, Y7
	VEXTRACTI128  $1, Y5, X8
	VEXTRACTI128  $1, Y6, X9
	VEXTRACTI128  $1, Y7, X10
	VPXOR         X8, X5, X5
	VPXOR         X9, X6, X6
	VPXOR         X10, X7, X7

	// Fold the middle term into lo and hi, reduce.
	VPSLLDQ $8, X7, X8
	VPSRLDQ $8, X7, X7
	VPXOR   X8, X5, X5
	VPXOR   X7, X6, X6
	REDUCE(X5, X8)
	VPXOR   X6, X5, X0

	// The length block: len(A) in bits in the high half (byte-reflected), len(C) = 0; then
	// times H, which is the power just past the last one used.
	SHLQ    $3, CX
	VPXOR   X1, X1, X1
	VPINSRQ $1, CX, X1, X1
	VPXOR   X1, X0, X0
	VMOVDQU -16(DI), X2
	MUL(X0, X2)
	VMOVDQU bswapMask<>(SB), X15
	VPSHUFB X15, X0, X0
	VPXOR   X13, X0, X0
	VMOVDQU X0, (R8)
	VZEROUPPER
	RET
