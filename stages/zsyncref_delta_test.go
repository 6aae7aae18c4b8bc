package stages

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// tarLike returns an old and a new version of an archive-like file: files
// of random lengths, each after a small header and padded to a multiple of
// rec bytes, so that the same file sits at other offsets modulo the block
// size in the two versions; some files are stored twice in each version
// (at different alignments), some change, some are added or dropped.
// This is the shape of consecutive release tars, where a scan that jumps
// over matched data can miss blocks found at other alignments.
func tarLike(seed uint64, files, rec, maxLen int) (old, cur []byte) {
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	contents := make([][]byte, files)
	for i := range contents {
		contents[i] = randData(seed*1000+uint64(i), 1+rng.IntN(maxLen))
	}
	pad := func(b []byte) []byte {
		for len(b)%rec != 0 {
			b = append(b, 0)
		}
		return b
	}
	build := func(order []int, edit func(i int, c []byte) []byte) []byte {
		var out []byte
		for _, i := range order {
			out = pad(append(out, randData(uint64(i)+seed<<20, rec)...)) // header
			out = pad(append(out, edit(i, contents[i])...))
		}
		return out
	}
	var oldOrder, newOrder []int
	for i := range files {
		switch rng.IntN(10) {
		case 0: // only in the old version
			oldOrder = append(oldOrder, i)
		case 1: // only in the new one
			newOrder = append(newOrder, i)
		case 2, 3, 4: // stored twice in both, elsewhere
			oldOrder = append(oldOrder, i)
			newOrder = append(newOrder, i)
			j := rng.IntN(len(oldOrder))
			oldOrder = append(oldOrder[:j], append([]int{i}, oldOrder[j:]...)...)
			j = rng.IntN(len(newOrder))
			newOrder = append(newOrder[:j], append([]int{i}, newOrder[j:]...)...)
		default:
			oldOrder = append(oldOrder, i)
			newOrder = append(newOrder, i)
		}
	}
	changed := func(i int, c []byte) []byte {
		if i%7 != 3 || len(c) < 10 {
			return c
		}
		c = append([]byte{}, c...)
		c[len(c)/2] ^= 0xff
		return c
	}
	return build(oldOrder, changed), build(newOrder, func(_ int, c []byte) []byte { return c })
}

// TestDeltaAtLeastZsync scans archive-like pairs and compares the blocks
// found with those zsync 0.6.2's scan finds (zsyncScan): never fewer, and
// the same blocks for every segment size and worker count. Files stored
// twice at different alignments make a scan that follows matched runs
// jump over blocks it would have found by rolling; zsync rolls there when
// it knows the run's blocks already, and so must Delta.
func TestDeltaAtLeastZsync(t *testing.T) {
	const bs = 512
	h := newHasher(t, strong.MD5, simd.Options{})
	for corpus := range uint64(4) {
		old, cur := tarLike(corpus+1, 150, 64, 8*bs)
		for _, hl := range []control.HashLengths{seq2, seq1} {
			f := makeControl(t, cur, bs, hl)
			want := 0
			for _, ok := range zsyncScan(t, f, h, old) {
				if ok {
					want++
				}
			}
			var first []int64
			// The default tile (1 MiB) holds the whole corpus: segments
			// of any size must find what one scan of the seed finds.
			// Tiles of 16 blocks: the scan starts afresh at their
			// boundaries, and must still find no fewer blocks than
			// zsync, the same for every segment size.
			for _, tile := range []int64{0, 16 * bs} {
				first = nil
				for _, seg := range []int64{1 << 30, 16 * bs} {
					for _, workers := range []int{1, 3} {
						name := fmt.Sprintf("corpus %d seq %d tile %d segment %d workers %d", corpus, hl.SeqMatches, tile, seg, workers)
						m := runDelta(t, f, DeltaOptions{SegmentSize: seg, Workers: workers, tile: tile}, old)
						checkLocations(t, m, cur, bs, old)
						if m.Found() < int64(want) {
							t.Errorf("%s: found %d blocks of %d, zsync %d", name, m.Found(), f.Blocks(), want)
						}
						got := missingBlocks(m)
						if first == nil {
							first = got
							t.Logf("%s: found %d blocks of %d, zsync %d", name, m.Found(), f.Blocks(), want)
						} else if !equalInts(got, first) {
							t.Errorf("%s: missing %d blocks, first scan %d", name, len(got), len(first))
						}
					}
				}
			}
		}
	}
}
