package stages

import (
	"bytes"
	"fmt"
	"math/bits"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// index answers, for the rolling checksums at a seed offset, which target
// blocks may start there. With seq_matches 2 it is keyed on the checksums of
// a block and of the block after it, as zsync does; a bit table in front
// rejects most offsets without touching the hash chains.
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

	bitShift uint
	bitTable []uint64
	// bit2Shift and bitTable2: the second filter (see hashMul2).
	bit2Shift uint
	bitTable2 []uint64

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

// hashMul2 gives each key a bit in a second, smaller bit table (bitTable2):
// the rolling scan's probes (probe1, probe2) test it at the offsets the
// first lets through (≈ 1 %), so that most of them cost one access to a
// table that stays in cache instead of the two cache misses of a chain
// walk (maybe tests both again before the walk).
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
	// A bit table of 2^(log2 n + 7) bits, at most 2^27 (16 MiB): zsync
	// uses +3, but at ≈ 1 % density it lets through few enough offsets that
	// the hash chains are rarely walked, which on data that does not match
	// is worth more than keeping the table in L1 (measured: 0 %-match scan
	// 285 MB/s per core at +5, 370 at +7, with 16,384 blocks: 256 KiB).
	// Beyond 256 KiB (2^21 bits) the table leaves the L2 cache, and every
	// offset probed costs a miss: there it is kept at 256 KiB as long as
	// that is +5 or more (≈ 3 % density; the second table below then
	// catches most of what it lets through). Measured on the Go release
	// tars (59,685 blocks: 1 MiB at +7), CPU of the scan alone, one
	// worker, 5 alternated runs at load 12-15: consecutive pair median
	// 1.39 s at 256 KiB against 1.56 s at 1 MiB, divergent pair 1.64 s
	// against 1.88 s.
	lg := bits.Len(uint(max(entries, 1)))
	ix.bitShift = uint(64 - min(lg+7, max(21, lg+5), 27))
	ix.bitTable = make([]uint64, max(1<<(64-ix.bitShift)/64, 1))
	ix.bit2Shift = uint(64 - min(lg+4, 24))
	ix.bitTable2 = make([]uint64, max(1<<(64-ix.bit2Shift)/64, 1))
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
		bt := bitOf(key, ix.bitShift) // as the probes compute it (roll.go)
		ix.bitTable[bt>>6] |= 1 << (bt & 63)
		bt = (key * hashMul2) >> ix.bit2Shift
		ix.bitTable2[bt>>6] |= 1 << (bt & 63)
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

// maybe reports whether both bit tables admit key.
func (ix *index) maybe(key uint64) bool {
	bt := bitOf(key, ix.bitShift)
	bt2 := (key * hashMul2) >> ix.bit2Shift
	return ix.bitTable[bt>>6]&(1<<(bt&63)) != 0 && ix.bitTable2[bt2>>6]&(1<<(bt2&63)) != 0
}
