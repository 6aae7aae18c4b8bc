package stages

import "github.com/zsyncpipe/zsyncpipe/rollsum"

// The rolling scan runs in two passes over chunks of positions, because a
// single loop that rolls two checksums and probes the filters needs more
// registers than the compiler has, and its spills put a store and a load on
// the checksums' dependency chain at every byte. Pass one (roller.fill)
// rolls one checksum and stores it per position; pass two (probe) reads the
// checksums of a position and of the position one block later (the next
// block, for seq_matches 2) and tests the filters. Each loop stays in
// registers; together they run about twice as fast. On amd64 with AVX2
// both passes are assembly kernels (roll_amd64.s: 16 windows rolled, then
// 8 positions probed, a step), with the Go loops below as the fallback.

// rollChunk is how many positions a pass covers at a time, at least: the
// chunk is never shorter than a block, so that carrying the next block's
// checksums over to the next chunk costs at most one copy per position.
const rollChunk = 16 << 10

// roller keeps the packed rolling checksums (a<<16 | b, masked as the
// control file's records are) of the windows starting at base, base+1, …,
// base+have-1 of buf.
type roller struct {
	buf   []byte
	bs    int
	mask  uint32
	chunk int // positions per pass
	sums  []uint32
	base  int
	have  int
	a, b  uint32 // the sums of the window at base+have
}

// newRoller returns a roller over buf; sums, when long enough, is used for
// the checksums instead of a new slice (scanners reuse it from segment to
// segment).
func newRoller(buf []byte, bs, seq int, mask uint32, sums []uint32) *roller {
	chunk := max(min(rollChunk, len(buf)), bs) // small seeds: small tables
	if n := chunk + (seq-1)*bs; cap(sums) >= n {
		sums = sums[:n]
	} else {
		sums = make([]uint32, n)
	}
	return &roller{buf: buf, bs: bs, mask: mask, chunk: chunk, sums: sums}
}

// reset starts the sums at window p.
func (r *roller) reset(p int) {
	s := rollsum.Block(r.buf[p : p+r.bs])
	r.base, r.have = p, 0
	r.a, r.b = uint32(s.A), uint32(s.B)
}

// fill makes sums of the first m windows from base available, m no more
// than len(r.sums); windows must fit in buf.
func (r *roller) fill(m int) {
	if r.have >= m {
		return
	}
	q0 := r.base + r.have
	q1 := r.base + m
	r.a, r.b = rollSums(r.buf[q0:q1], r.buf[q0+r.bs:q1+r.bs], r.sums[r.have:m], r.a, r.b, uint32(r.bs), r.mask)
	r.have = m
}

// advance drops the first n windows.
func (r *roller) advance(n int) {
	copy(r.sums, r.sums[n:r.have])
	r.base += n
	r.have -= n
}

// rollSums stores the checksum of each window starting at out[i], masked,
// in sums[i], then rolls it on by a byte: out[i] leaves, in[i] enters. a
// and b are the sums of the first window; the sums of the window after the
// last are returned (only their low 16 bits count). With AVX2 the vector
// kernel (roll_amd64.s) rolls 16 windows at a time and rollSumsGo the few
// left over.
func rollSums(out, in []byte, sums []uint32, a, b, bs, mask uint32) (uint32, uint32) {
	in = in[:len(out)]
	sums = sums[:len(out)]
	n, a, b := rollSumsVec(out, in, sums, a, b, bs, mask)
	return rollSumsGo(out[n:], in[n:], sums[n:], a, b, bs, mask)
}

// rollSumsGo is rollSums without vector instructions.
//
//go:noinline
func rollSumsGo(out, in []byte, sums []uint32, a, b, bs, mask uint32) (uint32, uint32) {
	in = in[:len(out)]
	sums = sums[:len(out)]
	for i, o := range out {
		sums[i] = (a<<16 | b&0xffff) & mask
		a += uint32(in[i]) - uint32(o)
		b += a - bs*uint32(o)
	}
	return a, b
}

// bloomHi and bloomLo hash a key for the first filter: its top and low 32
// bits are multiplied by them (mod 2^32) and the products' XOR is the
// key's 32-bit hash h, whose top bits pick the word; bloomMul mixes h once
// more for the bits. Three 32-bit multiplies, which AVX2 does 8 at a time,
// instead of the 64-bit product of hashMul that takes five.
const (
	bloomHi  = 0x9E3779B1
	bloomLo  = 0xC2B2AE35
	bloomMul = 0x85EBCA6B
)

// bloomOf returns the word of the first filter (index.bloom) for key and
// the three bits (or fewer, when they coincide) it sets there: the word is
// the top 32 − shift bits of the key's hash h, and the bits are 1 << each
// of the top three 5-bit fields of h·bloomMul (mod 2^32). Index
// construction and the probes (in Go and in roll_amd64.s) agree on it.
func bloomOf(key uint64, shift uint) (word uint32, mask uint32) {
	h := uint32(key>>32)*bloomHi ^ uint32(key)*bloomLo
	g := h * bloomMul
	return h >> (shift & 63), 1<<(g>>27) | 1<<(g>>22&31) | 1<<(g>>17&31)
}

// probe2 returns the first i at which the pair key of s0[i] and s1[i] is
// admitted by both of ix's filters (index.maybe), or s0[i] equals last
// (a masked checksum; pass 1<<32 for none); len(s0) if there is none. The
// checksums are masked already. The first filter rejects all but about
// 0.3-1 % of the positions; the second is looked at only then, here rather than by
// the caller, so that a position the first lets through costs a few
// instructions instead of a return to the scanner. With AVX2 the vector
// kernel probes 8 positions at a time, and probe2Go the few left over.
func probe2(s0, s1 []uint32, ix *index, last uint64) int {
	s1 = s1[:len(s0)]
	m, i := probe2Vec(s0, s1, ix, last)
	if i < m {
		return i
	}
	return m + probe2Go(s0[m:], s1[m:], ix, last)
}

// probe2Go is probe2 without vector instructions. It tests the first
// filter itself (bloomOf, inlined: a call per position costs a third of
// the loop's speed) and calls index.maybe only for the keys that pass.
//
//go:noinline
func probe2Go(s0, s1 []uint32, ix *index, last uint64) int {
	s1 = s1[:len(s0)]
	bloom, shift := ix.bloom, ix.bloomShift
	words := uint32(len(bloom) - 1) // a power of two, less one
	for i, x := range s0 {
		h := x*bloomHi ^ s1[i]*bloomLo
		g := h * bloomMul
		m := uint32(1)<<(g>>27) | 1<<(g>>22&31) | 1<<(g>>17&31)
		if bloom[h>>shift&words]&m == m && ix.maybe(uint64(x)<<32|uint64(s1[i])) || uint64(x) == last {
			return i
		}
	}
	return len(s0)
}

// probe1 is probe2 for keys of one block (seq_matches 1).
func probe1(s0 []uint32, ix *index) int {
	m, i := probe1Vec(s0, ix)
	if i < m {
		return i
	}
	return m + probe1Go(s0[m:], ix)
}

// probe1Go is probe1 without vector instructions.
//
//go:noinline
func probe1Go(s0 []uint32, ix *index) int {
	bloom, shift := ix.bloom, ix.bloomShift
	words := uint32(len(bloom) - 1)
	for i, x := range s0 {
		h := x * bloomLo
		g := h * bloomMul
		m := uint32(1)<<(g>>27) | 1<<(g>>22&31) | 1<<(g>>17&31)
		if bloom[h>>shift&words]&m == m && ix.maybe(uint64(x)) {
			return i
		}
	}
	return len(s0)
}
