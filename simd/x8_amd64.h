// Shared by md5x8_amd64.s and md4x8_amd64.s: the message words of one
// 64-byte block of each of the 8 lanes, transposed into 16 vectors (word k
// of lanes 0..7) in the cache, 32 bytes each. AX points to the 8 int32
// lane offsets from SI (the base, which advances by 64 per block); CX is
// the 32-byte aligned cache. Loads and shuffles instead of 16 gathers,
// which are slow on AMD Zen (about half the hashing time there). Uses R8
// and Y4-Y15; every lane's offset must point to readable data.

#define X8ROW(lane, disp, Y) \
	MOVLQSX lane*4(AX), R8 \
	VMOVDQU disp(SI)(R8*1), Y

// X8TRANSPOSE8 transposes the 8 words at disp of each lane into cache
// slots first..first+7.
#define X8TRANSPOSE8(disp, first) \
	X8ROW(0, disp, Y4)             \
	X8ROW(1, disp, Y5)             \
	X8ROW(2, disp, Y6)             \
	X8ROW(3, disp, Y7)             \
	X8ROW(4, disp, Y8)             \
	X8ROW(5, disp, Y9)             \
	X8ROW(6, disp, Y10)            \
	X8ROW(7, disp, Y11)            \
	VPUNPCKLDQ  Y5, Y4, Y12        \
	VPUNPCKHDQ  Y5, Y4, Y13        \
	VPUNPCKLDQ  Y7, Y6, Y4         \
	VPUNPCKHDQ  Y7, Y6, Y5         \
	VPUNPCKLDQ  Y9, Y8, Y6         \
	VPUNPCKHDQ  Y9, Y8, Y7         \
	VPUNPCKLDQ  Y11, Y10, Y8       \
	VPUNPCKHDQ  Y11, Y10, Y9       \
	VPUNPCKLQDQ Y4, Y12, Y10       \
	VPUNPCKHQDQ Y4, Y12, Y11       \
	VPUNPCKLQDQ Y5, Y13, Y12       \
	VPUNPCKHQDQ Y5, Y13, Y4        \
	VPUNPCKLQDQ Y8, Y6, Y13        \
	VPUNPCKHQDQ Y8, Y6, Y5         \
	VPUNPCKLQDQ Y9, Y7, Y6         \
	VPUNPCKHQDQ Y9, Y7, Y8         \
	VPERM2I128  $0x20, Y13, Y10, Y7 \
	VPERM2I128  $0x31, Y13, Y10, Y9 \
	VMOVDQA     Y7, (first+0)*32(CX) \
	VMOVDQA     Y9, (first+4)*32(CX) \
	VPERM2I128  $0x20, Y5, Y11, Y7  \
	VPERM2I128  $0x31, Y5, Y11, Y9  \
	VMOVDQA     Y7, (first+1)*32(CX) \
	VMOVDQA     Y9, (first+5)*32(CX) \
	VPERM2I128  $0x20, Y6, Y12, Y7  \
	VPERM2I128  $0x31, Y6, Y12, Y9  \
	VMOVDQA     Y7, (first+2)*32(CX) \
	VMOVDQA     Y9, (first+6)*32(CX) \
	VPERM2I128  $0x20, Y8, Y4, Y7   \
	VPERM2I128  $0x31, Y8, Y4, Y9   \
	VMOVDQA     Y7, (first+3)*32(CX) \
	VMOVDQA     Y9, (first+7)*32(CX)
