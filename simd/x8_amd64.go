//go:build amd64 && gc && !noasm && !appengine

package simd

import (
	"crypto/md5"
	"encoding/binary"
	"math"
	"runtime"
	"unsafe"

	"github.com/klauspost/cpuid/v2"
)

// md5x8block runs the MD5 block function over n bytes (a multiple of 64) of
// 8 streams at once, with AVX2. state holds the 8 digests as 4 vectors of 8
// words (digest8). Stream i starts at base+bufs[i]; every lane is read,
// so a lane without a block of its own must repeat another's offset (its
// state is then garbage). cache is 544 bytes of scratch. From md5-simd,
// see md5x8_amd64.s.
//
//go:noescape
func md5x8block(state *uint32, base uintptr, bufs *int32, cache *byte, n int)

// md4x8block is md5x8block for MD4 (md4x8_amd64.s).
//
//go:noescape
func md4x8block(state *uint32, base uintptr, bufs *int32, cache *byte, n int)

// digest8 is the state of 8 MD4 or MD5 streams, one vector register per
// word.
type digest8 struct {
	v0, v1, v2, v3 [8]uint32
}

// cache8 is md5x8block's scratch: 8×64 bytes, 32-byte aligned inside.
type cache8 [512 + 32]byte

// avx256md5consts are MD5's 64 round constants, each repeated for the 8
// lanes; md5x8block reads them by this name.
//
//lint:ignore U1000 read by md5x8_amd64.s
var avx256md5consts = func() []uint32 {
	k := [64]uint32{
		0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
		0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
		0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
		0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
		0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
		0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
		0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
		0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
	}
	out := make([]uint32, 0, 8*len(k))
	for _, c := range k {
		for range 8 {
			out = append(out, c)
		}
	}
	return out
}()

// cpuHasX8 reports whether x8 can run: it needs AVX2 only.
func cpuHasX8() bool { return cpuid.CPU.Has(cpuid.AVX2) }

// x8 computes the MD5 digests (MD4 with md4) of up to 8 blocks of equal
// length in one pass over the AVX2 lanes, reading the blocks where they
// are (no copies, no goroutines), and reports whether it did. It does
// nothing and reports false when blocks is empty or longer than 8, when
// the lengths differ, or when the blocks lie more than 2 GiB apart (the
// lanes address them by 32-bit offsets from one base). MD4 and MD5 share
// the initial state, the padding and the little-endian digest.
func x8(md4 bool, sums *[8][md5.Size]byte, blocks [][]byte) bool {
	n := len(blocks)
	if n == 0 || n > 8 {
		return false
	}
	size := len(blocks[0])
	for _, b := range blocks[1:] {
		if len(b) != size {
			return false
		}
	}
	d := digest8{}
	for i := range 8 {
		d.v0[i], d.v1[i], d.v2[i], d.v3[i] = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
	}
	var (
		cache cache8
		offs  [8]int32
	)
	whole := size &^ 63
	if whole > 0 {
		// No Go function calls between taking the addresses and the
		// (NOSPLIT, frameless) assembly: a stack copy could move blocks
		// or pad that live on a stack, and base is a bare address.
		lo, hi := uintptr(math.MaxUint), uintptr(0)
		for _, b := range blocks {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			lo, hi = min(lo, p), max(hi, p)
		}
		if hi-lo > math.MaxInt32-64 {
			return false
		}
		base := lo - 4
		for i, b := range blocks {
			offs[i] = int32(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - base)
		}
		for i := n; i < 8; i++ {
			offs[i] = offs[0] // lanes without a block hash the first again
		}
		if md4 {
			md4x8block(&d.v0[0], base, &offs[0], &cache[0], whole)
		} else {
			md5x8block(&d.v0[0], base, &offs[0], &cache[0], whole)
		}
	}
	// The tail and the padding: the bytes after the last whole 64, 0x80,
	// zeros, and the length in bits, in one or two 64-byte blocks. Blocks
	// whose length is a multiple of 64 (zsync's) share one padding block.
	tail := size - whole
	padLen := 64
	if tail >= 56 {
		padLen = 128
	}
	var pad [8][128]byte
	bits := uint64(size) << 3
	for i, b := range blocks {
		if i > 0 && tail == 0 {
			offs[i] = 4
			continue
		}
		copy(pad[i][:], b[whole:])
		pad[i][tail] = 0x80
		binary.LittleEndian.PutUint64(pad[i][padLen-8:], bits)
		offs[i] = int32(4 + i*len(pad[i]))
	}
	for i := n; i < 8; i++ {
		offs[i] = 4
	}
	if md4 {
		md4x8block(&d.v0[0], uintptr(unsafe.Pointer(&pad[0][0]))-4, &offs[0], &cache[0], padLen)
	} else {
		md5x8block(&d.v0[0], uintptr(unsafe.Pointer(&pad[0][0]))-4, &offs[0], &cache[0], padLen)
	}
	runtime.KeepAlive(blocks)
	runtime.KeepAlive(&pad)
	for i := range n {
		binary.LittleEndian.PutUint32(sums[i][0:], d.v0[i])
		binary.LittleEndian.PutUint32(sums[i][4:], d.v1[i])
		binary.LittleEndian.PutUint32(sums[i][8:], d.v2[i])
		binary.LittleEndian.PutUint32(sums[i][12:], d.v3[i])
	}
	return true
}
