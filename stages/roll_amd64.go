//go:build amd64 && gc && !noasm

package stages

import "github.com/klauspost/cpuid/v2"

// hasAVX2 reports whether the vector kernels of roll_amd64.s can run: they
// use AVX2, and BMI2's shifts.
var hasAVX2 = cpuid.CPU.Supports(cpuid.AVX2, cpuid.BMI2)

// rollSumsAVX2 is rollSums for n windows, n a multiple of 16, with AVX2
// (roll_amd64.s). It returns the sums of the window after the last, in 16
// bits.
//
//go:noescape
func rollSumsAVX2(out, in *byte, sums *uint32, n int, a, b, bs, mask uint32) (ra, rb uint32)

// probe2AVX2 is probe2 for n positions, n a multiple of 8, with AVX2
// (roll_amd64.s): table and sh are the index's first filter and its shift
// (bloom, bloomShift), table2 and shift2 its second (bloom2,
// bloom2Shift); a position
// whose s0 equals last passes too when lastOn is all ones. It returns n
// when no position passes.
//
//go:noescape
func probe2AVX2(s0, s1 *uint32, n int, table *uint32, sh uint64, last, lastOn uint32, table2 *uint32, shift2 uint64) int

// probe1AVX2 is probe1 for n positions, n a multiple of 8, with AVX2, as
// probe2AVX2.
//
//go:noescape
func probe1AVX2(s0 *uint32, n int, table *uint32, sh uint64, table2 *uint32, shift2 uint64) int

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

// vecProbe reports whether the vector kernels can probe ix's filters: with
// every word they may compute within the tables (as it is when the first
// has 2^(32−bloomShift) words and the second 2^(64−bloom2Shift)), and
// shifts the kernels compute as the Go code does.
func vecProbe(ix *index) bool {
	return hasAVX2 && ix.bloomShift <= 32 && ix.bloom2Shift >= 42 && ix.bloom2Shift <= 63 &&
		uint64(len(ix.bloom)) >= 1<<(32-ix.bloomShift) &&
		uint64(len(ix.bloom2)) >= 1<<(64-ix.bloom2Shift)
}

// probe2Vec probes the longest prefix of s0 whose length is a multiple of 8
// with AVX2: it returns that length m and the first position i < m that
// passes, or i = m if none does; 0, 0 without AVX2.
func probe2Vec(s0, s1 []uint32, ix *index, last uint64) (m, i int) {
	m = len(s0) &^ 7
	if m == 0 || len(s1) < m || !vecProbe(ix) {
		return 0, 0
	}
	var lastOn uint32
	if last < 1<<32 {
		lastOn = ^uint32(0)
	}
	return m, probe2AVX2(&s0[0], &s1[0], m, &ix.bloom[0], uint64(ix.bloomShift), uint32(last), lastOn,
		&ix.bloom2[0], uint64(ix.bloom2Shift))
}

// probe1Vec is probe2Vec for keys of one block.
func probe1Vec(s0 []uint32, ix *index) (m, i int) {
	m = len(s0) &^ 7
	if m == 0 || !vecProbe(ix) {
		return 0, 0
	}
	return m, probe1AVX2(&s0[0], m, &ix.bloom[0], uint64(ix.bloomShift),
		&ix.bloom2[0], uint64(ix.bloom2Shift))
}
