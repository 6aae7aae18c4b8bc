package rollsum

// ChunkSize is the length of the chunks a Chunks sums: the smallest block
// size zsyncmake and zsyncpipe choose, so that the checksum of a block of
// any of their sizes at a multiple of its size follows from its chunks'
// (Combine).
const ChunkSize = 2048

// Chunks is an io.Writer that keeps the checksum of every ChunkSize-byte
// chunk of what is written to it, the last chunk padded with zeros (as a
// scan pads a file's last block). It lets a caller that reads a file
// anyway (to hash it) learn the checksums of its blocks without reading it
// again. The zero Chunks is ready to use.
type Chunks struct {
	sums  []uint32
	carry [ChunkSize]byte
	n     int // bytes in carry
}

// Write records the checksums of the chunks p completes. It never fails.
func (c *Chunks) Write(p []byte) (int, error) {
	n := len(p)
	if c.n > 0 {
		k := copy(c.carry[c.n:], p)
		c.n += k
		p = p[k:]
		if c.n < ChunkSize {
			return n, nil
		}
		c.sums = append(c.sums, Block(c.carry[:]).Packed())
		c.n = 0
	}
	for len(p) >= ChunkSize {
		c.sums = append(c.sums, Block(p[:ChunkSize]).Packed())
		p = p[ChunkSize:]
	}
	c.n = copy(c.carry[:], p)
	return n, nil
}

// Sums returns the checksums (Sum.Packed) of the chunks written so far, the
// last one padded with zeros, and starts afresh: the slice returned is the
// caller's.
func (c *Chunks) Sums() []uint32 {
	if c.n > 0 {
		clear(c.carry[c.n:])
		c.sums = append(c.sums, Block(c.carry[:]).Packed())
	}
	s := c.sums
	c.sums, c.n = nil, 0
	return s
}

// Combine returns the checksum of a block of k chunks whose checksums
// (Sum.Packed) are sums, followed by k − len(sums) chunks of zeros (a block
// that reaches past the end of the data, padded).
func Combine(sums []uint32, k int) Sum {
	var a, b uint16
	for j, s := range sums[:min(len(sums), k)] {
		sa, sb := uint16(s>>16), uint16(s)
		a += sa
		// Every byte of chunk j is followed by k−1−j more chunks.
		b += sb + sa*uint16(ChunkSize*(k-1-j))
	}
	return Sum{A: a, B: b}
}
