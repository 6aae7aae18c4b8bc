//go:build amd64 && gc && !noasm && !appengine

// MD4 on 8 streams at once with AVX2: md5x8block's scheme (see
// md5x8_amd64.s: the message words of each lane's block transposed into a
// cache of 16 vectors, x8_amd64.h) applied to MD4's three rounds (RFC 1320).

#include "textflag.h"
#include "x8_amd64.h"

DATA md4k2<>+0(SB)/4, $0x5a827999
GLOBL md4k2<>(SB), RODATA|NOPTR, $4
DATA md4k3<>+0(SB)/4, $0x6ed9eba1
GLOBL md4k3<>(SB), RODATA|NOPTR, $4

#define a Y0
#define b Y1
#define c Y2
#define d Y3

#define sa Y4
#define sb Y5
#define sc Y6
#define sd Y7

#define tmp  Y8
#define tmp2 Y9
#define mask Y10
#define off  Y11
#define k    Y12
#define rtmp1 Y13
#define rtmp2 Y14
#define mem   Y15

#define DIG   BX
#define CACHE CX
#define COUNT DX
#define BASE  SI

#define roll(shift, r) \
	VPSLLD $shift, r, rtmp1 \
	VPSRLD $32-shift, r, r  \
	VPOR   rtmp1, r, r

// a = rotl(a + F(b,c,d) + X[i], s), F = d ^ (b & (c ^ d)).
#define ROUND1(a, b, c, d, i, s) \
	VMOVDQA    i*32(CACHE), mem            \
	VPXOR      c, d, tmp                   \
	VPAND      b, tmp, tmp                 \
	VPXOR      d, tmp, tmp                 \
	VPADDD     tmp, a, a                   \
	VPADDD     mem, a, a                   \
	roll(s, a)

// a = rotl(a + G(b,c,d) + X[i] + K2, s), G = (b & c) | (d & (b | c)).
#define ROUND2(a, b, c, d, i, s) \
	VPOR   b, c, tmp        \
	VPAND  d, tmp, tmp      \
	VPAND  b, c, tmp2       \
	VPOR   tmp2, tmp, tmp   \
	VPADDD tmp, a, a        \
	VPADDD i*32(CACHE), a, a \
	VPADDD k, a, a          \
	roll(s, a)

// a = rotl(a + H(b,c,d) + X[i] + K3, s), H = b ^ c ^ d.
#define ROUND3(a, b, c, d, i, s) \
	VPXOR  b, c, tmp        \
	VPXOR  d, tmp, tmp      \
	VPADDD tmp, a, a        \
	VPADDD i*32(CACHE), a, a \
	VPADDD k, a, a          \
	roll(s, a)

// func md4x8block(state *uint32, base uintptr, bufs *int32, cache *byte, n int)
TEXT ·md4x8block(SB), NOSPLIT, $0-40
	MOVQ state+0(FP), DIG
	MOVQ base+8(FP), BASE
	MOVQ bufs+16(FP), AX
	MOVQ cache+24(FP), CACHE
	MOVQ n+32(FP), COUNT

	// Align the cache (544 bytes given) to 32 bytes.
	ADDQ $31, CACHE
	ANDB $-32, CL

	VMOVDQU (DIG), a
	VMOVDQU 32(DIG), b
	VMOVDQU 64(DIG), c
	VMOVDQU 96(DIG), d

	VMOVDQU  (AX), off
	VPXOR    mask, mask, mask
	VPCMPGTD mask, off, mask

loop:
	X8TRANSPOSE8(0, 0)
	X8TRANSPOSE8(32, 8)

	VMOVDQA a, sa
	VMOVDQA b, sb
	VMOVDQA c, sc
	VMOVDQA d, sd

	ROUND1(a, b, c, d, 0, 3)
	ROUND1(d, a, b, c, 1, 7)
	ROUND1(c, d, a, b, 2, 11)
	ROUND1(b, c, d, a, 3, 19)
	ROUND1(a, b, c, d, 4, 3)
	ROUND1(d, a, b, c, 5, 7)
	ROUND1(c, d, a, b, 6, 11)
	ROUND1(b, c, d, a, 7, 19)
	ROUND1(a, b, c, d, 8, 3)
	ROUND1(d, a, b, c, 9, 7)
	ROUND1(c, d, a, b, 10, 11)
	ROUND1(b, c, d, a, 11, 19)
	ROUND1(a, b, c, d, 12, 3)
	ROUND1(d, a, b, c, 13, 7)
	ROUND1(c, d, a, b, 14, 11)
	ROUND1(b, c, d, a, 15, 19)

	VPBROADCASTD md4k2<>(SB), k
	ROUND2(a, b, c, d, 0, 3)
	ROUND2(d, a, b, c, 4, 5)
	ROUND2(c, d, a, b, 8, 9)
	ROUND2(b, c, d, a, 12, 13)
	ROUND2(a, b, c, d, 1, 3)
	ROUND2(d, a, b, c, 5, 5)
	ROUND2(c, d, a, b, 9, 9)
	ROUND2(b, c, d, a, 13, 13)
	ROUND2(a, b, c, d, 2, 3)
	ROUND2(d, a, b, c, 6, 5)
	ROUND2(c, d, a, b, 10, 9)
	ROUND2(b, c, d, a, 14, 13)
	ROUND2(a, b, c, d, 3, 3)
	ROUND2(d, a, b, c, 7, 5)
	ROUND2(c, d, a, b, 11, 9)
	ROUND2(b, c, d, a, 15, 13)

	VPBROADCASTD md4k3<>(SB), k
	ROUND3(a, b, c, d, 0, 3)
	ROUND3(d, a, b, c, 8, 9)
	ROUND3(c, d, a, b, 4, 11)
	ROUND3(b, c, d, a, 12, 15)
	ROUND3(a, b, c, d, 2, 3)
	ROUND3(d, a, b, c, 10, 9)
	ROUND3(c, d, a, b, 6, 11)
	ROUND3(b, c, d, a, 14, 15)
	ROUND3(a, b, c, d, 1, 3)
	ROUND3(d, a, b, c, 9, 9)
	ROUND3(c, d, a, b, 5, 11)
	ROUND3(b, c, d, a, 13, 15)
	ROUND3(a, b, c, d, 3, 3)
	ROUND3(d, a, b, c, 11, 9)
	ROUND3(c, d, a, b, 7, 11)
	ROUND3(b, c, d, a, 15, 15)

	VPADDD sa, a, a
	VPADDD sb, b, b
	VPADDD sc, c, c
	VPADDD sd, d, d

	LEAQ 64(BASE), BASE
	SUBQ $64, COUNT
	JNE  loop

	VMOVDQU a, (DIG)
	VMOVDQU b, 32(DIG)
	VMOVDQU c, 64(DIG)
	VMOVDQU d, 96(DIG)
	VZEROUPPER
	RET
