// Package rollsum implements zsync's rolling checksum: two 16-bit sums over a
// block that can be moved one byte along the data in constant time.
//
// For a block d[0..n-1], a = Σ d[i] and b = Σ (n−i)·d[i], both mod 2^16. The
// packed form is a<<16 | b, which is the big-endian 4-byte record of a zsync
// control file read as a uint32.
package rollsum

// Sum is the rolling checksum of a window of Size bytes.
type Sum struct {
	A, B uint16
}

// Block returns the checksum of a whole block.
func Block(d []byte) Sum {
	var a, b uint32
	n := uint32(len(d))
	for i, c := range d {
		a += uint32(c)
		b += (n - uint32(i)) * uint32(c)
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
