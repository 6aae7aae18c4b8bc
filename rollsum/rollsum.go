// Package rollsum implements zsync's rolling checksum: two 16-bit sums over a
// block that can be moved one byte along the data in constant time.
//
// For a block d[0..n-1], a = Σ d[i] and b = Σ (n−i)·d[i], both mod 2^16. The
// packed form is a<<16 | b, which is the big-endian 4-byte record of a zsync
// control file read as a uint32.
package rollsum

import "encoding/binary"

// Sum is the rolling checksum of a window of bytes.
type Sum struct {
	A, B uint16
}

// Block returns the checksum of a whole block.
//
// It works on groups of 128 bytes with SWAR arithmetic: the even and odd
// bytes of each 8-byte word are spread over four 16-bit lanes of a uint64,
// and two lane vectors per parity are accumulated — V, the running sum of
// the words' lanes, and U, the running sum of V — so that after a group
// U holds Σ (16−k)·lane_k. From U and V the group's byte sum and its
// weighted sum Σ (128−i)·d[i] follow with a few lane extractions; the
// groups then combine like bytes do. Lanes cannot overflow: a lane of U
// reaches at most 255·136 < 2^16 after 16 words.
//
// On amd64 with AVX2, the longest prefix whose length is a multiple of 32
// is summed with vector instructions instead (block_amd64.s: a byte sum
// and a 32…1-weighted sum per 32-byte vector, combined like the groups).
func Block(d []byte) Sum {
	n := uint32(len(d))
	var a, b uint32
	if m, s, w := vecPrefix(d); m > 0 {
		n -= uint32(m)
		a, b = s, n*s+w
		d = d[m:]
	}
	for len(d) >= 128 {
		s, w := group128(d[:128])
		n -= 128
		// Every byte of the group is followed by n more bytes of the block.
		b += n*s + w
		a += s
		d = d[128:]
	}
	for _, c := range d {
		a += uint32(c)
		b += n * uint32(c)
		n--
	}
	return Sum{A: uint16(a), B: uint16(b)}
}

const lanes16 = 0x00FF00FF00FF00FF

// group128 returns the byte sum of a 128-byte group and its weighted sum
// Σ (128−i)·g[i].
func group128(g []byte) (sum, weighted uint32) {
	var ve, vo, ue, uo uint64
	_ = g[127]
	for k := 0; k < 128; k += 8 {
		w := binary.LittleEndian.Uint64(g[k:])
		ve += w & lanes16
		vo += w >> 8 & lanes16
		ue += ve
		uo += vo
	}
	// Byte i = 8k + j has weight 128 − i = 8·(16 − k) − j. U gives the
	// first term per lane; the second is j times the lane's column sum in
	// V. Lane l of the even vector holds j = 2l, of the odd one j = 2l+1.
	// The multiplications gather Σ weight·lane into the top 16 bits; no
	// partial sum reaches 2^16 (V lanes ≤ 255·16, weights ≤ 7).
	sum = uint32((ve*0x0001000100010001)>>48) + uint32((vo*0x0001000100010001)>>48)
	colE := uint32((ve * 0x0000000200040006) >> 48) // 0·l0 + 2·l1 + 4·l2 + 6·l3
	colO := uint32((vo * 0x0001000300050007) >> 48) // 1·l0 + 3·l1 + 5·l2 + 7·l3
	u := uint32(ue&0xffff) + uint32(ue>>16&0xffff) + uint32(ue>>32&0xffff) + uint32(ue>>48) +
		uint32(uo&0xffff) + uint32(uo>>16&0xffff) + uint32(uo>>32&0xffff) + uint32(uo>>48)
	return sum, 8*u - colE - colO
}

// Roll moves a window of size bytes one byte on: out leaves at the front,
// in enters at the back.
func (s Sum) Roll(out, in byte, size int) Sum {
	s.A += uint16(in) - uint16(out)
	s.B += s.A - uint16(size)*uint16(out)
	return s
}

// Packed returns a<<16 | b.
func (s Sum) Packed() uint32 { return uint32(s.A)<<16 | uint32(s.B) }
