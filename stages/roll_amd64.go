//go:build amd64 && gc && !noasm

package stages

import "github.com/klauspost/cpuid/v2"

// hasAVX2 reports whether the vector kernels of roll_amd64.s can run.
var hasAVX2 = cpuid.CPU.Has(cpuid.AVX2)

// rollSumsAVX2 is rollSums for n windows, n a multiple of 16, with AVX2
// (roll_amd64.s). It returns the sums of the window after the last, in 16
// bits.
//
//go:noescape
func rollSumsAVX2(out, in *byte, sums *uint32, n int, a, b, bs, mask uint32) (ra, rb uint32)

// probe2AVX2 is probe2 for n positions, n a multiple of 8, with AVX2
// (roll_amd64.s): sh is 32 − (64 − shift), the shift of the top 32 bits of
// the key's product; a position whose s0 equals last passes too when
// lastOn is all ones. It returns n when no position passes.
//
//go:noescape
func probe2AVX2(s0, s1 *uint32, n int, table *uint64, sh uint64, last, lastOn uint32) int

// probe1AVX2 is probe1 for n positions, n a multiple of 8, with AVX2, as
// probe2AVX2.
//
//go:noescape
func probe1AVX2(s0 *uint32, n int, table *uint64, sh uint64) int

// rollSumsVec rolls the longest prefix of out whose length is a multiple of
// 16 with AVX2 and returns its length and the sums after it; 0 and a, b
// without AVX2.
func rollSumsVec(out, in []byte, sums []uint32, a, b, bs, mask uint32) (int, uint32, uint32) {
	n := len(out) &^ 15
	if !hasAVX2 || n == 0 || len(in) < n || len(sums) < n {
		return 0, a, b
	}
	a, b = rollSumsAVX2(&out[0], &in[0], &sums[0], n, a, b, bs, mask)
	return n, a, b
}

// vecShift returns the shift of the top 32 bits of a key's product that
// gives the same bit as shift does on all 64, and whether the vector
// kernels can probe table with it: at most 32 bits of index, and every
// index within the table (as it is when the table has 2^(64−shift) bits or
// more, so that probe2Go's wrap-around never applies).
func vecShift(table []uint64, shift uint) (uint64, bool) {
	if !hasAVX2 || shift < 32 || shift > 63 || uint64(len(table)) < (1<<(64-shift)+63)/64 {
		return 0, false
	}
	return uint64(shift - 32), true
}

// probe2Vec probes the longest prefix of s0 whose length is a multiple of 8
// with AVX2: it returns that length m and the first position i < m that
// passes, or i = m if none does; 0, 0 without AVX2.
func probe2Vec(s0, s1 []uint32, table []uint64, shift uint, last uint64) (m, i int) {
	m = len(s0) &^ 7
	sh, ok := vecShift(table, shift)
	if !ok || m == 0 || len(s1) < m {
		return 0, 0
	}
	var lastOn uint32
	if last < 1<<32 {
		lastOn = ^uint32(0)
	}
	return m, probe2AVX2(&s0[0], &s1[0], m, &table[0], sh, uint32(last), lastOn)
}

// probe1Vec is probe2Vec for keys of one block.
func probe1Vec(s0 []uint32, table []uint64, shift uint) (m, i int) {
	m = len(s0) &^ 7
	sh, ok := vecShift(table, shift)
	if !ok || m == 0 {
		return 0, 0
	}
	return m, probe1AVX2(&s0[0], m, &table[0], sh)
}
