package stages

import (
	"bytes"
	"fmt"
	"math/bits"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// index answers, for the rolling checksums at a seed offset, which target
// blocks may start there. With seq_matches 2 it is keyed on the checksums of
// a block and of the block after it, as zsync does; two filters in front
// reject most offsets without touching the hash chains: a blocked Bloom
// filter (bloom) that costs one 32-bit word per probe, then a second,
// smaller one (bloom2) for the few offsets the first lets through.
type index struct {
	bs     int
	n      int32
	seq    int
	mask   uint32
	rsum   []uint32
	strong []byte
	sb     int

	// Blocks with identical records form a group: dupFirst is the first
	// block of i's group, dupNext the next one (-1 at the end).
	dupFirst []int32
	dupNext  []int32

	// bloom is the first filter: every key sets three bits of one 32-bit
	// word (bloomOf), which the top 32 bits of key·hashMul shifted right
	// by bloomShift pick.
	bloomShift uint
	bloom      []uint32
	// bloom2 is the second filter, with three bits a key in one 32-bit
	// word too, picked by the top 64 − bloom2Shift bits of key·hashMul2
	// (bloom2Of).
	bloom2Shift uint
	bloom2      []uint32

	tableShift uint
	heads      []int32 // per bucket, first entry or -1
	entries    []entry

	// last is the final block, looked for on its own when seq is 2 (it has
	// no successor to pair with); -1 when it needs no special case.
	last int32
}

type entry struct {
	key  uint64
	blk  int32
	next int32
}

const hashMul = 0x9E3779B97F4A7C15

// hashMul2 gives each key its word and bits in the second filter
// (bloom2): the rolling scan's probes (probe1, probe2) test it at the
// offsets the first filter lets through (≈ 0.5 %), so that most of them
// cost one access to that table instead of the two cache misses of a
// chain walk (maybe tests both again before the walk).
const hashMul2 = 0xC2B2AE3D27D4EB4F

func newIndex(f *control.File) (*index, error) {
	c := &f.Checksums
	n := c.Len()
	if int64(n) != f.Blocks() {
		return nil, fmt.Errorf("control file has %d block records for %d blocks", n, f.Blocks())
	}
	if n >= 1<<31-1 {
		return nil, fmt.Errorf("control file has %d blocks; at most %d are supported", n, 1<<31-2)
	}
	if c.StrongBytes <= 0 || len(c.Strong) != n*c.StrongBytes {
		return nil, fmt.Errorf("control file has %d strong hash bytes for %d blocks of %d", len(c.Strong), n, c.StrongBytes)
	}
	seq := f.HashLengths.SeqMatches
	if seq != 2 {
		seq = 1
	}
	ix := &index{
		bs:     f.Blocksize,
		n:      int32(n),
		seq:    seq,
		mask:   control.RsumMask(c.RsumBytes),
		rsum:   c.Rsum,
		strong: c.Strong,
		sb:     c.StrongBytes,
		last:   -1,
	}
	if n == 0 {
		return ix, nil
	}
	ix.groupDuplicates()

	entries := n
	if seq == 2 {
		entries = n - 1
		ix.last = int32(n - 1)
	}
	lg := bits.Len(uint(max(entries, 1)))
	ix.bloomShift = bloomShift(entries)
	ix.bloom = make([]uint32, 1<<(32-ix.bloomShift))
	ix.bloom2Shift = bloom2Shift(entries)
	ix.bloom2 = make([]uint32, 1<<(64-ix.bloom2Shift))
	ix.tableShift = uint(64 - min(lg+1, 30))
	ix.heads = make([]int32, 1<<(64-ix.tableShift))
	for i := range ix.heads {
		ix.heads[i] = -1
	}
	ix.entries = make([]entry, 0, entries)
	for i := 0; i < entries; i++ {
		key := uint64(ix.rsum[i])
		if seq == 2 {
			key = key<<32 | uint64(ix.rsum[i+1])
		}
		h := key * hashMul
		b := h >> ix.tableShift
		dup := false
		for e := ix.heads[b]; e >= 0; e = ix.entries[e].next {
			o := ix.entries[e].blk
			if ix.entries[e].key == key && ix.sameBlock(int(o), i) && (seq == 1 || ix.sameBlock(int(o)+1, i+1)) {
				dup = true // the same content (pair) is already indexed
				break
			}
		}
		if dup {
			continue
		}
		ix.entries = append(ix.entries, entry{key: key, blk: int32(i), next: ix.heads[b]})
		ix.heads[b] = int32(len(ix.entries) - 1)
		w, m := bloomOf(key, ix.bloomShift) // as the probes compute it (roll.go)
		ix.bloom[w] |= m
		w2, m2 := bloom2Of(key, ix.bloom2Shift)
		ix.bloom2[w2] |= m2
	}
	return ix, nil
}

// sameBlock reports whether blocks i and j have identical records.
func (ix *index) sameBlock(i, j int) bool {
	return ix.rsum[i] == ix.rsum[j] && bytes.Equal(ix.strongOf(i), ix.strongOf(j))
}

// lastRsum returns the rolling checksum of the final block, which the scan
// looks for on its own (see last), or 1<<32 (no checksum) when it needs
// no special case.
func (ix *index) lastRsum() uint64 {
	if ix.last < 0 {
		return 1 << 32 // none: no rolling checksum is this large
	}
	return uint64(ix.rsum[ix.last])
}

// strongOf returns the strong checksum of block i.
func (ix *index) strongOf(i int) []byte { return ix.strong[i*ix.sb : (i+1)*ix.sb] }

// groupDuplicates links blocks with identical records, so that finding the
// data of one gives every position where the target holds it.
func (ix *index) groupDuplicates() {
	n := int(ix.n)
	ix.dupFirst = make([]int32, n)
	ix.dupNext = make([]int32, n)
	shift := uint(64 - min(bits.Len(uint(n))+1, 30))
	heads := make([]int32, 1<<(64-shift))
	for i := range heads {
		heads[i] = -1
	}
	chain := make([]int32, n) // next group leader in the same bucket
	tail := make([]int32, n)  // last member of a leader's group
	for i := 0; i < n; i++ {
		ix.dupNext[i] = -1
		ix.dupFirst[i] = int32(i)
		b := (uint64(ix.rsum[i]) * hashMul) >> shift
		leader := int32(-1)
		for l := heads[b]; l >= 0; l = chain[l] {
			if ix.sameBlock(int(l), i) {
				leader = l
				break
			}
		}
		if leader < 0 {
			chain[i] = heads[b]
			heads[b] = int32(i)
			tail[i] = int32(i)
			continue
		}
		ix.dupFirst[i] = leader
		ix.dupNext[tail[leader]] = int32(i)
		tail[leader] = int32(i)
	}
}

// maybe reports whether both filters admit key.
func (ix *index) maybe(key uint64) bool {
	if !ix.bloomHas(key) {
		return false
	}
	w2, m2 := bloom2Of(key, ix.bloom2Shift)
	return ix.bloom2[w2]&m2 == m2
}

// bloomHas reports whether the first filter admits key.
func (ix *index) bloomHas(key uint64) bool {
	w, m := bloomOf(key, ix.bloomShift)
	return ix.bloom[w]&m == m
}

// bloomShift returns the shift that sizes the first filter for n keys:
// 2^(32−shift) words of 32 bits, about one key per word (1 to 2) while
// that is at most 256 KiB, so that it stays in this CPU's 512 KiB L2
// cache beside the seed data and the rolling checksums; beyond, 2 to 4
// keys per word, at most 16 MiB. With three bits per key in one word, a
// key that is not in the filter passes with a probability of about 0.3 %
// at one key per word, 1.1 % at 2 and 4 % at 4. The bit table it
// replaced, one bit per key, let 1.9 % through at 52 bits per key: for
// the 80,000 blocks of the divergent tree pair, 512 KiB, which left the
// L2 cache (see docs/trees-measurements.md, "Sixth session: scan").
func bloomShift(n int) uint {
	w := bits.Len(uint(max(n, 1))) - 1
	if w > 16 {
		w = min(max(16, w-1), 22)
	}
	return uint(32 - w)
}

// bloom2Shift returns the shift that sizes the second filter for n keys:
// 2^(64−shift) words of 32 bits, 4 to 8 keys per word (64 KiB for the
// 80,000 blocks of the divergent tree pair), at most 16 MiB. It sees only
// the ≈ 0.5 % of the offsets that the first lets through, and lets about
// 5-15 % of those through to the chains: small, so that it stays in the L2
// cache beside the first (the bit table of 256 KiB it replaced cost a
// cache miss at most of its probes).
func bloom2Shift(n int) uint {
	w := bits.Len(uint(max(n, 1))) - 3
	return uint(64 - min(max(w, 1), 22))
}

// bloom2Of returns the word of the second filter (index.bloom2) for key
// and the bits it sets there: the word is the top 64 − shift bits of
// key·hashMul2, the bits 1 << each of the three 5-bit fields below them.
// shift is at most 63.
func bloom2Of(key uint64, shift uint) (word uint64, mask uint32) {
	h := key * hashMul2
	f := h >> (shift - 15)
	return h >> shift, 1<<(f&31) | 1<<(f>>5&31) | 1<<(f>>10&31)
}
