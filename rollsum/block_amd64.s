//go:build amd64 && gc && !noasm

#include "textflag.h"

// Weights 32, 31, …, 1 for the bytes of a 32-byte vector.
DATA weights<>+0(SB)/8, $0x191a1b1c1d1e1f20
DATA weights<>+8(SB)/8, $0x1112131415161718
DATA weights<>+16(SB)/8, $0x090a0b0c0d0e0f10
DATA weights<>+24(SB)/8, $0x0102030405060708
GLOBL weights<>(SB), RODATA|NOPTR, $32

// Sixteen 16-bit ones.
DATA ones16<>+0(SB)/8, $0x0001000100010001
DATA ones16<>+8(SB)/8, $0x0001000100010001
DATA ones16<>+16(SB)/8, $0x0001000100010001
DATA ones16<>+24(SB)/8, $0x0001000100010001
GLOBL ones16<>(SB), RODATA|NOPTR, $32

// func sums32(p *byte, n int, out *[12]uint64)
// n is a positive multiple of 32. For the N = n/32 vectors V_j of p, with
// S_j the byte sum of V_j and W_j = Σ_k (32−k)·V_j[k]:
//   out[0:4]  lanes of Σ_j S_j (qwords)
//   out[4:8]  lanes of Σ_j (N−1−j)·S_j (qwords; the sum of the running
//             sums before each vector)
//   out[8:12] lanes of Σ_j W_j (eight dwords)
TEXT ·sums32(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+16(FP), DI
	VMOVDQU weights<>(SB), Y15
	VMOVDQU ones16<>(SB), Y14
	VPXOR   Y13, Y13, Y13
	VPXOR   Y0, Y0, Y0
	VPXOR   Y1, Y1, Y1
	VPXOR   Y2, Y2, Y2

loop:
	VMOVDQU    (SI), Y3
	VPADDQ     Y0, Y1, Y1
	VPSADBW    Y13, Y3, Y4
	VPADDQ     Y4, Y0, Y0
	VPMADDUBSW Y15, Y3, Y5
	VPMADDWD   Y14, Y5, Y5
	VPADDD     Y5, Y2, Y2
	ADDQ       $32, SI
	SUBQ       $32, CX
	JNZ        loop

	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VZEROUPPER
	RET
