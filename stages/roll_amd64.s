//go:build amd64 && gc && !noasm

#include "textflag.h"

// The rolling scan's kernels with AVX2 (see roll.go, roll_amd64.go).

// Lane numbers 0…15 in words.
DATA lanes16<>+0(SB)/8, $0x0003000200010000
DATA lanes16<>+8(SB)/8, $0x0007000600050004
DATA lanes16<>+16(SB)/8, $0x000b000a00090008
DATA lanes16<>+24(SB)/8, $0x000f000e000d000c
GLOBL lanes16<>(SB), RODATA|NOPTR, $32

// VPSHUFB pattern copying word 7 of each 128-bit half to all its words.
DATA word7<>+0(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA word7<>+8(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA word7<>+16(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA word7<>+24(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL word7<>(SB), RODATA|NOPTR, $32

// PREFIX turns the sixteen words of x into their inclusive prefix sums
// (mod 2^16), and sets every word of tot to the sum of all sixteen; t and
// u are scratch. Y12 holds word7<>.
#define PREFIX(x, t, u, tot) \
	VPSLLDQ    $2, x, t      \
	VPADDW     t, x, x       \
	VPSLLDQ    $4, x, t      \
	VPADDW     t, x, x       \
	VPSLLDQ    $8, x, t      \
	VPADDW     t, x, x       \
	VPSHUFB    Y12, x, t     \
	VPERM2I128 $0x08, t, t, u \
	VPADDW     u, x, x       \
	VPERM2I128 $0x01, t, t, u \
	VPADDW     u, t, tot

// func rollSumsAVX2(out, in *byte, sums *uint32, n int, a, b, bs, mask uint32) (ra, rb uint32)
//
// For the 16 windows k = 0…15 of a step, with a0, b0 the sums of window 0,
// o_k = out[k] leaving and d_k = in[k] − o_k:
//   a_k = a0 + Σ_{j<k} d_j
//   b_k = b0 + Σ_{j<k} a_{j+1} − bs·o_j = b0 + k·a0 + Σ_{j<k} G_j,
// with G_j = Σ_{m≤j} d_m − bs·o_j. Two prefix sums per step, and the sums
// carried to the next step (a0 += Σ d, b0 += 16·a0 + Σ G) depend on
// nothing computed in the step but those totals.
TEXT ·rollSumsAVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), SI
	MOVQ in+8(FP), DI
	MOVQ sums+16(FP), DX
	MOVQ n+24(FP), CX
	MOVL a+32(FP), AX
	MOVL b+36(FP), BX
	MOVL bs+40(FP), R8
	MOVL mask+44(FP), R9

	VMOVD        AX, X11
	VPBROADCASTW X11, Y11 // a0
	VMOVD        BX, X10
	VPBROADCASTW X10, Y10 // b0
	VMOVD        R8, X15
	VPBROADCASTW X15, Y15 // bs
	VMOVD        R9, X14
	VPBROADCASTD X14, Y14 // mask
	VMOVDQU      lanes16<>(SB), Y13
	VMOVDQU      word7<>(SB), Y12

loop:
	VPMOVZXBW (SI), Y0 // o
	VPMOVZXBW (DI), Y1
	VPSUBW    Y0, Y1, Y1 // d
	VMOVDQA   Y1, Y2
	PREFIX(Y2, Y6, Y7, Y3) // Y2 = Σ_{m≤k} d_m, Y3 = Σ d
	VPMULLW   Y15, Y0, Y4
	VPSUBW    Y4, Y2, Y4 // G
	VMOVDQA   Y4, Y5
	PREFIX(Y5, Y6, Y7, Y8) // Y5 = Σ_{j≤k} G_j, Y8 = Σ G

	VPSUBW  Y1, Y2, Y2
	VPADDW  Y11, Y2, Y2 // a_k
	VPSUBW  Y4, Y5, Y5
	VPMULLW Y13, Y11, Y7
	VPADDW  Y7, Y5, Y5
	VPADDW  Y10, Y5, Y5 // b_k

	VPSLLW $4, Y11, Y7
	VPADDW Y7, Y10, Y10
	VPADDW Y8, Y10, Y10 // b0 of the next step
	VPADDW Y3, Y11, Y11 // a0 of the next step

	// a_k<<16 | b_k in windows order: the quarters 0, 2, 1, 3, so that
	// interleaving within halves gives windows 0-7, then 8-15.
	VPERMQ     $0xd8, Y2, Y2
	VPERMQ     $0xd8, Y5, Y5
	VPUNPCKLWD Y2, Y5, Y6
	VPUNPCKHWD Y2, Y5, Y7
	VPAND      Y14, Y6, Y6
	VPAND      Y14, Y7, Y7
	VMOVDQU    Y6, (DX)
	VMOVDQU    Y7, 32(DX)

	ADDQ $16, SI
	ADDQ $16, DI
	ADDQ $64, DX
	SUBQ $16, CX
	JNZ  loop

	VMOVD   X11, AX
	MOVWLZX AX, AX
	VMOVD   X10, BX
	MOVWLZX BX, BX
	MOVL    AX, ra+48(FP)
	MOVL    BX, rb+52(FP)
	VZEROUPPER
	RET

// BLOOM sets w to the first filter's word of 8 keys and m to their bits
// there (bloomOf), from h, their hashes, which it overwrites: w is h
// shifted right by X11, the bits are 1 << the top three 5-bit fields of
// h·bloomMul. Y9 holds bloomMul, Y13 31 and Y12 1 in every lane; t is
// scratch.
#define BLOOM(h, w, m, t) \
	VPSRLD  X11, h, w  \
	VPMULLD Y9, h, h   \
	VPSRLD  $27, h, t  \
	VPSLLVD t, Y12, m  \
	VPSRLD  $22, h, t  \
	VPAND   Y13, t, t  \
	VPSLLVD t, Y12, t  \
	VPOR    t, m, m    \
	VPSRLD  $17, h, t  \
	VPAND   Y13, t, t  \
	VPSLLVD t, Y12, t  \
	VPOR    t, m, m

// BLOOM2 jumps to yes if the key in AX (kept) passes the second filter,
// as bloom2Of and index.maybe compute it: the word at the top bits of
// key·hashMul2 shifted right by shift (at most 63), holding the bits of
// the three 5-bit fields below them. table and shift are loaded from the
// frame. Uses DX, R8, R10, R11, R13.
#define BLOOM2(table, shift, yes) \
	MOVQ  $0xC2B2AE3D27D4EB4F, DX \
	IMULQ AX, DX                  \
	MOVQ  shift, R8               \
	SHRXQ R8, DX, R11             \
	MOVQ  table, R10              \
	MOVL  (R10)(R11*4), R11       \
	SUBQ  $15, R8                 \
	SHRXQ R8, DX, DX              \
	MOVL  $1, R13                 \
	SHLXL DX, R13, R10            \
	SHRL  $5, DX                  \
	SHLXL DX, R13, R8             \
	ORL   R8, R10                 \
	SHRL  $5, DX                  \
	SHLXL DX, R13, R8             \
	ORL   R8, R10                 \
	ANDNL R10, R11, R11           \
	JZ    yes

// CONSTS loads the constants of the hash and of BLOOM: Y15 = bloomHi,
// Y14 = bloomLo, Y13 = 31, Y12 = 1, Y9 = bloomMul in every lane.
#define CONSTS \
	MOVL         $0x9e3779b1, AX \
	VMOVD        AX, X15 \
	VPBROADCASTD X15, Y15 \
	MOVL         $0xc2b2ae35, AX \
	VMOVD        AX, X14 \
	VPBROADCASTD X14, Y14 \
	MOVL         $31, AX \
	VMOVD        AX, X13 \
	VPBROADCASTD X13, Y13 \
	MOVL         $1, AX  \
	VMOVD        AX, X12 \
	VPBROADCASTD X12, Y12 \
	MOVL         $0x85ebca6b, AX \
	VMOVD        AX, X9  \
	VPBROADCASTD X9, Y9

// LANES sets R to a bit per lane whose word (Y4) in the filter at BX has
// all its bits (Y5). One gather for the 8 words: on AMD Zen 3 it costs
// less than 8 scalar loads with the extracts they need (which paid when
// a key was one bit of a table: see docs/trees.md, "Sixth session:
// scan"). Uses Y3, Y6.
#define LANES(R) \
	VPCMPEQD   Y3, Y3, Y3         \
	VPGATHERDD Y3, (BX)(Y4*4), Y6 \
	VPAND      Y5, Y6, Y6         \
	VPCMPEQD   Y5, Y6, Y6         \
	VMOVMSKPS  Y6, R

// func probe2AVX2(s0, s1 *uint32, n int, table *uint32, sh uint64, last, lastOn uint32, table2 *uint32, shift2 uint64) int
//
// Eight positions a step: the first filter's words are tested for all
// eight (LANES); when one passes (about 3 % of the steps at the index's
// usual density) or s0 is last, the lanes that pass are checked one by
// one against the second filter, so that the caller sees only the
// positions that index.maybe admits (or last). probe1AVX2 likewise, with
// one-block keys and no last.
TEXT ·probe2AVX2(SB), NOSPLIT, $0-72
	MOVQ s0+0(FP), SI
	MOVQ s1+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ table+24(FP), BX
	MOVQ sh+32(FP), X11
	MOVL last+40(FP), AX
	MOVL lastOn+44(FP), DX
	VMOVD        AX, X10
	VPBROADCASTD X10, Y10 // last
	VMOVD        DX, X8
	VPBROADCASTD X8, Y8   // lastOn
	CONSTS
	XORQ         R12, R12

loop2:
	VMOVDQU   (SI)(R12*4), Y0 // s0
	VMOVDQU   (DI)(R12*4), Y1 // s1
	VPMULLD   Y15, Y0, Y2     // s0·bloomHi
	VPMULLD   Y14, Y1, Y6     // s1·bloomLo
	VPXOR     Y2, Y6, Y6      // the hash
	BLOOM(Y6, Y4, Y5, Y3)
	VPCMPEQD  Y10, Y0, Y3
	VPAND     Y8, Y3, Y3
	VMOVMSKPS Y3, R14 // lanes holding last
	LANES(R15)
	ORL       R14, R15 // or hold last
	JNZ       lane2

next2:
	ADDQ $8, R12
	CMPQ R12, CX
	JB   loop2
	MOVQ CX, ret+64(FP)
	VZEROUPPER
	RET

lane2:
	TESTL R15, R15
	JZ    next2
	BSFL  R15, R9
	BTL   R9, R14
	JC    found2
	LEAQ  (R12)(R9*1), R10
	MOVL  (SI)(R10*4), AX
	MOVL  (DI)(R10*4), DX
	SHLQ  $32, AX
	ORQ   DX, AX // the key
	BLOOM2(table2+48(FP), shift2+56(FP), found2)
	LEAL  -1(R15), DX
	ANDL  DX, R15
	JMP   lane2

found2:
	ADDQ R9, R12
	MOVQ R12, ret+64(FP)
	VZEROUPPER
	RET

// func probe1AVX2(s0 *uint32, n int, table *uint32, sh uint64, table2 *uint32, shift2 uint64) int
TEXT ·probe1AVX2(SB), NOSPLIT, $0-56
	MOVQ s0+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ table+16(FP), BX
	MOVQ sh+24(FP), X11
	CONSTS
	XORQ         R12, R12

loop1:
	VMOVDQU (SI)(R12*4), Y0
	VPMULLD Y14, Y0, Y6 // the hash: s0·bloomLo
	BLOOM(Y6, Y4, Y5, Y3)
	LANES(R15)
	TESTL   R15, R15
	JNZ     lane1

next1:
	ADDQ $8, R12
	CMPQ R12, CX
	JB   loop1
	MOVQ CX, ret+48(FP)
	VZEROUPPER
	RET

lane1:
	TESTL R15, R15
	JZ    next1
	BSFL  R15, R9
	LEAQ  (R12)(R9*1), R10
	MOVL  (SI)(R10*4), AX // the key
	BLOOM2(table2+32(FP), shift2+40(FP), found1)
	LEAL  -1(R15), DX
	ANDL  DX, R15
	JMP   lane1

found1:
	ADDQ R9, R12
	MOVQ R12, ret+48(FP)
	VZEROUPPER
	RET
