//go:build amd64 && !purego

#include "textflag.h"

// AES-256-XTS sector encryption and decryption.
//
// Three paths (chosen in xts_amd64.go): AES-NI, VAES + AVX-512, VAES + AVX2.
// Each has one function body per direction, written once as a macro over
// the round instructions (AESENC/AESENCLAST or AESDEC/AESDECLAST).
//
// Arguments: rk = 15 data round keys (encryption or AESDEC-ready decryption
// schedule; stored twice over for AVX2), tk = 15 tweak round keys, dst, src,
// sector. len(src) is a non-zero multiple of 16; dst is at least as long.
//
// Tweaks: T_0 = AES-256(tk, sector as 16 little-endian bytes) and
// T_{i+1} = T_i·x in GF(2^128), the 128-bit little-endian shift of gf128.go.
// Each block is C_i = AES(rk, P_i ^ T_i) ^ T_i (decryption alike).

// xtsPoly serves both tweak-multiplication forms below: as dwords
// {0x87, 0, 1, 0} it masks the carries of DOUBLE; its low quadword 0x87 is
// the reduction constant VPCLMULQDQ multiplies by in MULX16. It is repeated
// to 32 bytes for 256-bit memory operands.
DATA xtsPoly<>+0(SB)/8, $0x0000000000000087
DATA xtsPoly<>+8(SB)/8, $0x0000000000000001
DATA xtsPoly<>+16(SB)/8, $0x0000000000000087
DATA xtsPoly<>+24(SB)/8, $0x0000000000000001
GLOBL xtsPoly<>(SB), RODATA|NOPTR, $32

// DOUBLE sets T = T·x with SSE, clobbering TMP; POLY holds xtsPoly. PADDQ
// shifts both quadwords left by one; the bits they lose come back through
// TMP: bit 63 of the low half as bit 64 (the 1), bit 127 as 0x87. PSHUFD
// moves the dwords holding those sign bits (3 and 1) to dwords 0 and 2 and
// PSRAL (PSRAD) turns each into an all-ones or all-zeros mask.
#define DOUBLE(T, TMP, POLY) \
	PSHUFD $0x13, T, TMP; \
	PADDQ  T, T;          \
	PSRAL  $31, TMP;      \
	PAND   POLY, TMP;     \
	PXOR   TMP, T

// VDOUBLE is DOUBLE in VEX encoding, for the VAES paths (mixing legacy SSE
// with dirty upper register state costs transition penalties).
#define VDOUBLE(T, TMP, POLY) \
	VPSHUFD $0x13, T, TMP;   \
	VPADDQ  T, T, T;         \
	VPSRAD  $31, TMP, TMP;   \
	VPAND   POLY, TMP, TMP;  \
	VPXOR   TMP, T, T

// TWEAK0 sets T = AES-256(tk at BX, sector in DX), using TMP.
#define TWEAK0(T, TMP) \
	MOVQ   DX, T;                               \
	MOVOU  (0*16)(BX), TMP;  PXOR       TMP, T; \
	MOVOU  (1*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (2*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (3*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (4*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (5*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (6*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (7*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (8*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (9*16)(BX), TMP;  AESENC     TMP, T; \
	MOVOU  (10*16)(BX), TMP; AESENC     TMP, T; \
	MOVOU  (11*16)(BX), TMP; AESENC     TMP, T; \
	MOVOU  (12*16)(BX), TMP; AESENC     TMP, T; \
	MOVOU  (13*16)(BX), TMP; AESENC     TMP, T; \
	MOVOU  (14*16)(BX), TMP; AESENCLAST TMP, T

// VTWEAK0 is TWEAK0 in VEX encoding.
#define VTWEAK0(T) \
	VMOVQ       DX, T;                \
	VPXOR       (0*16)(BX), T, T;     \
	VAESENC     (1*16)(BX), T, T;     \
	VAESENC     (2*16)(BX), T, T;     \
	VAESENC     (3*16)(BX), T, T;     \
	VAESENC     (4*16)(BX), T, T;     \
	VAESENC     (5*16)(BX), T, T;     \
	VAESENC     (6*16)(BX), T, T;     \
	VAESENC     (7*16)(BX), T, T;     \
	VAESENC     (8*16)(BX), T, T;     \
	VAESENC     (9*16)(BX), T, T;     \
	VAESENC     (10*16)(BX), T, T;    \
	VAESENC     (11*16)(BX), T, T;    \
	VAESENC     (12*16)(BX), T, T;    \
	VAESENC     (13*16)(BX), T, T;    \
	VAESENCLAST (14*16)(BX), T, T

// ---------------------------------------------------------------------------
// AES-NI path: 8 blocks in X0-X7 per loop, round key in X8, running tweak in
// X9, xtsPoly in X10, X11 scratch. The 8 tweaks of a loop are parked in the
// 128-byte frame for the final XOR. Then single blocks for the tail.

// ROUND8 applies one AES round instruction with key K to X0-X7.
#define ROUND8(OP, K) \
	OP K, X0; OP K, X1; OP K, X2; OP K, X3; \
	OP K, X4; OP K, X5; OP K, X6; OP K, X7

// LOAD8 loads block i of 8, XORs in the running tweak, parks the tweak and
// advances it.
#define LOAD8(i, X) \
	MOVOU X9, (i*16)(SP);  \
	MOVOU (i*16)(SI), X;   \
	PXOR  X9, X;           \
	DOUBLE(X9, X11, X10)

// STORE8 XORs the parked tweak into block i of 8 and stores it.
#define STORE8(i, X) \
	MOVOU (i*16)(SP), X8; \
	PXOR  X8, X;          \
	MOVOU X, (i*16)(DI)

// CRYPT8 runs the 14 rounds of AES-256 (OP, LAST: AESENC/AESENCLAST or
// AESDEC/AESDECLAST) on X0-X7 with the round keys at AX.
#define CRYPT8(OP, LAST) \
	MOVOU (0*16)(AX), X8;  ROUND8(PXOR, X8); \
	MOVOU (1*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (2*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (3*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (4*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (5*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (6*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (7*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (8*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (9*16)(AX), X8;  ROUND8(OP, X8);   \
	MOVOU (10*16)(AX), X8; ROUND8(OP, X8);   \
	MOVOU (11*16)(AX), X8; ROUND8(OP, X8);   \
	MOVOU (12*16)(AX), X8; ROUND8(OP, X8);   \
	MOVOU (13*16)(AX), X8; ROUND8(OP, X8);   \
	MOVOU (14*16)(AX), X8; ROUND8(LAST, X8)

// CRYPT1 runs the 14 rounds on X0 alone.
#define CRYPT1(OP, LAST) \
	MOVOU (0*16)(AX), X8;  PXOR X8, X0; \
	MOVOU (1*16)(AX), X8;  OP   X8, X0; \
	MOVOU (2*16)(AX), X8;  OP   X8, X0; \
	MOVOU (3*16)(AX), X8;  OP   X8, X0; \
	MOVOU (4*16)(AX), X8;  OP   X8, X0; \
	MOVOU (5*16)(AX), X8;  OP   X8, X0; \
	MOVOU (6*16)(AX), X8;  OP   X8, X0; \
	MOVOU (7*16)(AX), X8;  OP   X8, X0; \
	MOVOU (8*16)(AX), X8;  OP   X8, X0; \
	MOVOU (9*16)(AX), X8;  OP   X8, X0; \
	MOVOU (10*16)(AX), X8; OP   X8, X0; \
	MOVOU (11*16)(AX), X8; OP   X8, X0; \
	MOVOU (12*16)(AX), X8; OP   X8, X0; \
	MOVOU (13*16)(AX), X8; OP   X8, X0; \
	MOVOU (14*16)(AX), X8; LAST X8, X0

// XTS_AESNI is the AES-NI function body for one direction, which expects
// rk in AX, tk in BX, dst in DI, src in SI, len(src) in CX and sector in DX
// (loaded in each TEXT block, where go vet checks the argument names).
#define XTS_AESNI(OP, LAST) \
	MOVOU xtsPoly<>(SB), X10;   \
	TWEAK0(X9, X8);             \
loop8:;                         \
	CMPQ  CX, $128;             \
	JB    tail1;                \
	LOAD8(0, X0); LOAD8(1, X1); LOAD8(2, X2); LOAD8(3, X3); \
	LOAD8(4, X4); LOAD8(5, X5); LOAD8(6, X6); LOAD8(7, X7); \
	CRYPT8(OP, LAST);           \
	STORE8(0, X0); STORE8(1, X1); STORE8(2, X2); STORE8(3, X3); \
	STORE8(4, X4); STORE8(5, X5); STORE8(6, X6); STORE8(7, X7); \
	ADDQ  $128, SI;             \
	ADDQ  $128, DI;             \
	SUBQ  $128, CX;             \
	JMP   loop8;                \
tail1:;                         \
	TESTQ CX, CX;               \
	JZ    done;                 \
	MOVOU (SI), X0;             \
	PXOR  X9, X0;               \
	CRYPT1(OP, LAST);           \
	PXOR  X9, X0;               \
	MOVOU X0, (DI);             \
	DOUBLE(X9, X11, X10);       \
	ADDQ  $16, SI;              \
	ADDQ  $16, DI;              \
	SUBQ  $16, CX;              \
	JMP   tail1;                \
done:;                          \
	RET

// ---------------------------------------------------------------------------
// VAES + AVX-512 path: 16 blocks per loop, four to a 512-bit register
// (Z0-Z3), their tweaks in Z4-Z7 (lane l of Z4+j holds the tweak of block
// 4j+l), the 15 round keys broadcast to all lanes of Z16-Z30, xtsPoly in
// every lane of Z8, Z9-Z12 scratch. X13/X14 compute the first 16 tweaks one
// by one. Four registers in flight keep the AES unit busy (one 512-bit AESENC
// per cycle on Intel Emerald Rapids); eight measured no faster.

// VROUND4 applies one AES round instruction with key K to Z0-Z3.
#define VROUND4(OP, K) \
	OP K, Z0, Z0; OP K, Z1, Z1; OP K, Z2, Z2; OP K, Z3, Z3

// VCRYPT16 XORs the tweaks in and runs the 14 rounds on Z0-Z3; VPTERNLOGQ
// $0x96 is a three-way XOR (block, tweak, round key 0).
#define VCRYPT16(OP, LAST) \
	VPTERNLOGQ $0x96, Z16, Z4, Z0; \
	VPTERNLOGQ $0x96, Z16, Z5, Z1; \
	VPTERNLOGQ $0x96, Z16, Z6, Z2; \
	VPTERNLOGQ $0x96, Z16, Z7, Z3; \
	VROUND4(OP, Z17); VROUND4(OP, Z18); VROUND4(OP, Z19); VROUND4(OP, Z20); \
	VROUND4(OP, Z21); VROUND4(OP, Z22); VROUND4(OP, Z23); VROUND4(OP, Z24); \
	VROUND4(OP, Z25); VROUND4(OP, Z26); VROUND4(OP, Z27); VROUND4(OP, Z28); \
	VROUND4(OP, Z29); VROUND4(LAST, Z30); \
	VPXORQ Z4, Z0, Z0; \
	VPXORQ Z5, Z1, Z1; \
	VPXORQ Z6, Z2, Z2; \
	VPXORQ Z7, Z3, Z3

// MULX16 sets every lane of T to T·x^16, the tweak 16 blocks later: a
// two-byte left shift within the lane, and the 16 bits shifted out, times
// x^128 = x^7+x^2+x+1 (0x87, a carry-less product of at most 23 bits), XORed
// back into the low end.
#define MULX16(T, TMP) \
	VPSRLDQ    $14, T, TMP;     \
	VPSLLDQ    $2, T, T;        \
	VPCLMULQDQ $0x00, Z8, TMP, TMP; \
	VPXORQ     TMP, T, T

// SPREAD puts the running tweak X13 into lane L of Z and advances it.
#define SPREAD(L, Z) \
	VINSERTI32X4 $L, X13, Z, Z; \
	VDOUBLE(X13, X14, X8)

// XTS_VAES512 is the AVX-512 function body for one direction, with the
// registers loaded as for XTS_AESNI.
#define XTS_VAES512(OP, LAST) \
	VBROADCASTI32X4 xtsPoly<>(SB), Z8; \
	VTWEAK0(X13);                     \
	SPREAD(0, Z4); SPREAD(1, Z4); SPREAD(2, Z4); SPREAD(3, Z4); \
	SPREAD(0, Z5); SPREAD(1, Z5); SPREAD(2, Z5); SPREAD(3, Z5); \
	SPREAD(0, Z6); SPREAD(1, Z6); SPREAD(2, Z6); SPREAD(3, Z6); \
	SPREAD(0, Z7); SPREAD(1, Z7); SPREAD(2, Z7); SPREAD(3, Z7); \
	VBROADCASTI32X4 (0*16)(AX), Z16;  \
	VBROADCASTI32X4 (1*16)(AX), Z17;  \
	VBROADCASTI32X4 (2*16)(AX), Z18;  \
	VBROADCASTI32X4 (3*16)(AX), Z19;  \
	VBROADCASTI32X4 (4*16)(AX), Z20;  \
	VBROADCASTI32X4 (5*16)(AX), Z21;  \
	VBROADCASTI32X4 (6*16)(AX), Z22;  \
	VBROADCASTI32X4 (7*16)(AX), Z23;  \
	VBROADCASTI32X4 (8*16)(AX), Z24;  \
	VBROADCASTI32X4 (9*16)(AX), Z25;  \
	VBROADCASTI32X4 (10*16)(AX), Z26; \
	VBROADCASTI32X4 (11*16)(AX), Z27; \
	VBROADCASTI32X4 (12*16)(AX), Z28; \
	VBROADCASTI32X4 (13*16)(AX), Z29; \
	VBROADCASTI32X4 (14*16)(AX), Z30; \
loop16:;                      \
	CMPQ CX, $256;            \
	JB   tail;                \
	VMOVDQU64 (0*64)(SI), Z0; \
	VMOVDQU64 (1*64)(SI), Z1; \
	VMOVDQU64 (2*64)(SI), Z2; \
	VMOVDQU64 (3*64)(SI), Z3; \
	VCRYPT16(OP, LAST);       \
	VMOVDQU64 Z0, (0*64)(DI); \
	VMOVDQU64 Z1, (1*64)(DI); \
	VMOVDQU64 Z2, (2*64)(DI); \
	VMOVDQU64 Z3, (3*64)(DI); \
	MULX16(Z4, Z9); MULX16(Z5, Z10); MULX16(Z6, Z11); MULX16(Z7, Z12); \
	ADDQ $256, SI;            \
	ADDQ $256, DI;            \
	SUBQ $256, CX;            \
	JMP  loop16;              \
tail:;                        \
	/* 1-15 blocks left: the same 16-block step under opmasks, one bit */ \
	/* per quadword; masked-off lanes are neither loaded nor stored.   */ \
	TESTQ CX, CX;             \
	JZ    done;               \
	SHRQ  $3, CX;             \
	MOVQ  $1, DX;             \
	SHLQ  CX, DX;             \
	DECQ  DX;                 \
	KMOVQ DX, K1; SHRQ $8, DX; \
	KMOVQ DX, K2; SHRQ $8, DX; \
	KMOVQ DX, K3; SHRQ $8, DX; \
	KMOVQ DX, K4;             \
	VMOVDQU64.Z (0*64)(SI), K1, Z0; \
	VMOVDQU64.Z (1*64)(SI), K2, Z1; \
	VMOVDQU64.Z (2*64)(SI), K3, Z2; \
	VMOVDQU64.Z (3*64)(SI), K4, Z3; \
	VCRYPT16(OP, LAST);       \
	VMOVDQU64 Z0, K1, (0*64)(DI); \
	VMOVDQU64 Z1, K2, (1*64)(DI); \
	VMOVDQU64 Z2, K3, (2*64)(DI); \
	VMOVDQU64 Z3, K4, (3*64)(DI); \
done:;                        \
	VZEROUPPER;               \
	RET

// ---------------------------------------------------------------------------
// VAES + AVX2 path: 16 blocks per loop, two to a 256-bit register (Y0-Y7),
// their tweaks in Y8-Y15 (lane l of Y8+j holds the tweak of block 2j+l). With
// only 16 registers, the round keys are memory operands from rk, where each
// is stored twice (32 bytes). Then single blocks for the tail, with the
// running tweak in X8, xtsPoly in X9 and X10 scratch.

// YROUND8 applies one AES round instruction with the round key at memory
// operand K to Y0-Y7.
#define YROUND8(OP, K) \
	OP K, Y0, Y0; OP K, Y1, Y1; OP K, Y2, Y2; OP K, Y3, Y3; \
	OP K, Y4, Y4; OP K, Y5, Y5; OP K, Y6, Y6; OP K, Y7, Y7

// YXOR8 XORs the tweaks Y8-Y15 into Y0-Y7.
#define YXOR8 \
	VPXOR Y8, Y0, Y0;  VPXOR Y9, Y1, Y1;  VPXOR Y10, Y2, Y2; VPXOR Y11, Y3, Y3; \
	VPXOR Y12, Y4, Y4; VPXOR Y13, Y5, Y5; VPXOR Y14, Y6, Y6; VPXOR Y15, Y7, Y7

// YCRYPT16 XORs the tweaks in and runs the 14 rounds on Y0-Y7.
#define YCRYPT16(OP, LAST) \
	YXOR8; \
	YROUND8(VPXOR, (0*32)(AX)); \
	YROUND8(OP, (1*32)(AX));  YROUND8(OP, (2*32)(AX));  YROUND8(OP, (3*32)(AX));  \
	YROUND8(OP, (4*32)(AX));  YROUND8(OP, (5*32)(AX));  YROUND8(OP, (6*32)(AX));  \
	YROUND8(OP, (7*32)(AX));  YROUND8(OP, (8*32)(AX));  YROUND8(OP, (9*32)(AX));  \
	YROUND8(OP, (10*32)(AX)); YROUND8(OP, (11*32)(AX)); YROUND8(OP, (12*32)(AX)); \
	YROUND8(OP, (13*32)(AX)); YROUND8(LAST, (14*32)(AX)); \
	YXOR8

// YMULX16 is MULX16 for a 256-bit register, with the constant from memory.
#define YMULX16(T, TMP) \
	VPSRLDQ    $14, T, TMP;                   \
	VPSLLDQ    $2, T, T;                      \
	VPCLMULQDQ $0x00, xtsPoly<>(SB), TMP, TMP; \
	VPXOR      TMP, T, T

// YSPREAD puts the running tweak X0 into lane L of Y and advances it.
#define YSPREAD(L, Y) \
	VINSERTI128 $L, X0, Y, Y; \
	VDOUBLE(X0, X1, X2)

// XTS_VAES256 is the AVX2 function body for one direction, with the registers
// loaded as for XTS_AESNI (rk being the doubled schedule).
#define XTS_VAES256(OP, LAST) \
	VMOVDQU xtsPoly<>(SB), X2; \
	VTWEAK0(X0);               \
	YSPREAD(0, Y8);  YSPREAD(1, Y8);  YSPREAD(0, Y9);  YSPREAD(1, Y9);  \
	YSPREAD(0, Y10); YSPREAD(1, Y10); YSPREAD(0, Y11); YSPREAD(1, Y11); \
	YSPREAD(0, Y12); YSPREAD(1, Y12); YSPREAD(0, Y13); YSPREAD(1, Y13); \
	YSPREAD(0, Y14); YSPREAD(1, Y14); YSPREAD(0, Y15); YSPREAD(1, Y15); \
loop16:;                    \
	CMPQ CX, $256;          \
	JB   tail;              \
	VMOVDQU (0*32)(SI), Y0; \
	VMOVDQU (1*32)(SI), Y1; \
	VMOVDQU (2*32)(SI), Y2; \
	VMOVDQU (3*32)(SI), Y3; \
	VMOVDQU (4*32)(SI), Y4; \
	VMOVDQU (5*32)(SI), Y5; \
	VMOVDQU (6*32)(SI), Y6; \
	VMOVDQU (7*32)(SI), Y7; \
	YCRYPT16(OP, LAST);     \
	VMOVDQU Y0, (0*32)(DI); \
	VMOVDQU Y1, (1*32)(DI); \
	VMOVDQU Y2, (2*32)(DI); \
	VMOVDQU Y3, (3*32)(DI); \
	VMOVDQU Y4, (4*32)(DI); \
	VMOVDQU Y5, (5*32)(DI); \
	VMOVDQU Y6, (6*32)(DI); \
	VMOVDQU Y7, (7*32)(DI); \
	YMULX16(Y8, Y0);  YMULX16(Y9, Y1);  YMULX16(Y10, Y2); YMULX16(Y11, Y3); \
	YMULX16(Y12, Y4); YMULX16(Y13, Y5); YMULX16(Y14, Y6); YMULX16(Y15, Y7); \
	ADDQ $256, SI;          \
	ADDQ $256, DI;          \
	SUBQ $256, CX;          \
	JMP  loop16;            \
tail:;                      \
	/* Lane 0 of Y8 (X8) is the tweak of the next block. */ \
	VMOVDQU xtsPoly<>(SB), X9; \
tail1:;                     \
	TESTQ CX, CX;           \
	JZ    done;             \
	VMOVDQU (SI), X0;       \
	VPXOR   X8, X0, X0;     \
	VPXOR   (0*32)(AX), X0, X0;  \
	OP      (1*32)(AX), X0, X0;  \
	OP      (2*32)(AX), X0, X0;  \
	OP      (3*32)(AX), X0, X0;  \
	OP      (4*32)(AX), X0, X0;  \
	OP      (5*32)(AX), X0, X0;  \
	OP      (6*32)(AX), X0, X0;  \
	OP      (7*32)(AX), X0, X0;  \
	OP      (8*32)(AX), X0, X0;  \
	OP      (9*32)(AX), X0, X0;  \
	OP      (10*32)(AX), X0, X0; \
	OP      (11*32)(AX), X0, X0; \
	OP      (12*32)(AX), X0, X0; \
	OP      (13*32)(AX), X0, X0; \
	LAST    (14*32)(AX), X0, X0; \
	VPXOR   X8, X0, X0;     \
	VMOVDQU X0, (DI);       \
	VDOUBLE(X8, X10, X9);   \
	ADDQ $16, SI;           \
	ADDQ $16, DI;           \
	SUBQ $16, CX;           \
	JMP  tail1;             \
done:;                      \
	VZEROUPPER;             \
	RET

// func encryptVAES512(rk, tk *[15][16]byte, dst, src []byte, sector uint64)
TEXT ·encryptVAES512(SB), NOSPLIT, $0-72
	MOVQ rk+0(FP), AX
	MOVQ tk+8(FP), BX
	MOVQ dst_base+16(FP), DI
	MOVQ src_base+40(FP), SI
	MOVQ src_len+48(FP), CX
	MOVQ sector+64(FP), DX
	XTS_VAES512(VAESENC, VAESENCLAST)

// func decryptVAES512(rk, tk *[15][16]byte, dst, src []byte, sector uint64)
TEXT ·decryptVAES512(SB), NOSPLIT, $0-72
	MOVQ rk+0(FP), AX
	MOVQ tk+8(FP), BX
	MOVQ dst_base+16(FP), DI
	MOVQ src_base+40(FP), SI
	MOVQ src_len+48(FP), CX
	MOVQ sector+64(FP), DX
	XTS_VAES512(VAESDEC, VAESDECLAST)

// func encryptVAES256(rk *[15][32]byte, tk *[15][16]byte, dst, src []byte, sector uint64)
TEXT ·encryptVAES256(SB), NOSPLIT, $0-72
	MOVQ rk+0(FP), AX
	MOVQ tk+8(FP), BX
	MOVQ dst_base+16(FP), DI
	MOVQ src_base+40(FP), SI
	MOVQ src_len+48(FP), CX
	MOVQ sector+64(FP), DX
	XTS_VAES256(VAESENC, VAESENCLAST)

// func decryptVAES256(rk *[15][32]byte, tk *[15][16]byte, dst, src []byte, sector uint64)
TEXT ·decryptVAES256(SB), NOSPLIT, $0-72
	MOVQ rk+0(FP), AX
	MOVQ tk+8(FP), BX
	MOVQ dst_base+16(FP), DI
	MOVQ src_base+40(FP), SI
	MOVQ src_len+48(FP), CX
	MOVQ sector+64(FP), DX
	XTS_VAES256(VAESDEC, VAESDECLAST)

// func encryptAESNI(rk, tk *[15][16]byte, dst, src []byte, sector uint64)
TEXT ·encryptAESNI(SB), NOSPLIT, $128-72
	MOVQ rk+0(FP), AX
	MOVQ tk+8(FP), BX
	MOVQ dst_base+16(FP), DI
	MOVQ src_base+40(FP), SI
	MOVQ src_len+48(FP), CX
	MOVQ sector+64(FP), DX
	XTS_AESNI(AESENC, AESENCLAST)

// func decryptAESNI(rk, tk *[15][16]byte, dst, src []byte, sector uint64)
TEXT ·decryptAESNI(SB), NOSPLIT, $128-72
	MOVQ rk+0(FP), AX
	MOVQ tk+8(FP), BX
	MOVQ dst_base+16(FP), DI
	MOVQ src_base+40(FP), SI
	MOVQ src_len+48(FP), CX
	MOVQ sector+64(FP), DX
	XTS_AESNI(AESDEC, AESDECLAST)

// func invMixColumns(k *[16]byte)
TEXT ·invMixColumns(SB), NOSPLIT, $0-8
	MOVQ   k+0(FP), AX
	MOVOU  (AX), X0
	AESIMC X0, X0
	MOVOU  X0, (AX)
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
