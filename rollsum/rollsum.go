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
// It uses b = Σ (n−i)·d[i] = Σ over i of the prefix sums a_i, so each byte
// costs two additions; eight bytes are taken per step.
func Block(d []byte) Sum {
	var a, b uint32
	for len(d) >= 8 {
		w := binary.LittleEndian.Uint64(d)
		d0 := uint32(w & 0xff)
		d1 := uint32(w >> 8 & 0xff)
		d2 := uint32(w >> 16 & 0xff)
		d3 := uint32(w >> 24 & 0xff)
		d4 := uint32(w >> 32 & 0xff)
		d5 := uint32(w >> 40 & 0xff)
		d6 := uint32(w >> 48 & 0xff)
		d7 := uint32(w >> 56)
		// The eight prefix sums after a: 8a + 8d0 + 7d1 + ... + 1d7.
		b += 8*a + 8*d0 + 7*d1 + 6*d2 + 5*d3 + 4*d4 + 3*d5 + 2*d6 + d7
		a += d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7
		d = d[8:]
	}
	for _, c := range d {
		a += uint32(c)
		b += a
	}
	return Sum{A: uint16(a), B: uint16(b)}
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
