//go:build amd64 && gc && !noasm

package rollsum

import "golang.org/x/sys/cpu"

// hasVec reports whether sums32 can run (it needs AVX2).
var hasVec = cpu.X86.HasAVX2

// sums32 is implemented in block_amd64.s.
//
//go:noescape
func sums32(p *byte, n int, out *[12]uint64)

// vecPrefix returns the checksum parts of the longest prefix of d whose
// length is a multiple of 32, with AVX2: its length m, its byte sum and its
// weighted sum Σ (m−i)·d[i] (mod 2^32). It returns m = 0 when the CPU lacks
// AVX2 or d is shorter than 32 bytes.
func vecPrefix(d []byte) (m int, sum, weighted uint32) {
	m = len(d) &^ 31
	if !hasVec || m == 0 {
		return 0, 0, 0
	}
	var out [12]uint64
	sums32(&d[0], m, &out)
	var before uint32
	for i := range 4 {
		sum += uint32(out[i])
		before += uint32(out[4+i])
		weighted += uint32(out[8+i]) + uint32(out[8+i]>>32)
	}
	// Byte k of vector j is followed by (N−1−j)·32 bytes of later
	// vectors and by 31−k bytes of its own: weight (32−k) + 32·(N−1−j).
	return m, sum, weighted + 32*before
}
