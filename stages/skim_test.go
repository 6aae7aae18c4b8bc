package stages

import (
	"reflect"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// skimSeed lays out a seed for TestDeltaSkim (block size 512, Skim 16 KiB:
// windows of 2 KiB every 8 KiB once skimming, which begins at the first
// chunk boundary — 16 KiB of positions after the end of the last match —
// at least Skim after it):
//
//	0      target blocks 0-23 (a run, found at once; the last match ends at 12,288)
//	28,672 skimming begins: windows at 28,672, 36,864, 45,056, …
//	31,000 target blocks 30-31 (a pair between two windows)
//	40,100 target blocks 40-69 (a run a window falls on: at 45,220)
//	55,460 the run ends; skimming begins again at 71,844: windows at
//	       71,844, 80,036, 88,228, 96,420, …
//	75,844 target blocks 80-81 (a pair between two windows)
//	84,000 target blocks 83-84 (a pair between two windows)
//	96,000 target blocks 86-97 (a run the window at 96,420 falls on: the
//	       pair 87-88 at 96,512 matches; the scan goes back 16 KiB, to
//	       80,128, which is past 83-84 but not past 80-81)
//
// and unrelated data everywhere else, up to 110 KiB.
func skimSeed(target []byte) []byte {
	const bs = 512
	seed := randData(901, 110<<10)
	put := func(at, first, n int) { copy(seed[at:], target[first*bs:(first+n)*bs]) }
	put(0, 0, 24)
	put(31000, 30, 2)
	put(40100, 40, 30)
	put(75844, 80, 2)
	put(84000, 83, 2)
	put(96000, 86, 12)
	return seed
}

// TestDeltaSkim checks DeltaOptions.Skim: a run of target data that a
// skimmed window falls on is found whole, and so is a short piece less
// than Skim before the window (the scan goes back over it); a short piece
// between two windows further back is not, which a full scan finds — so
// the skim does leave offsets out. The result must not depend on the
// workers or the segments either.
func TestDeltaSkim(t *testing.T) {
	const bs = 512
	target := randData(900, 100*bs)
	seed := skimSeed(target)
	f := makeControl(t, target, bs, seq2)
	full := runDelta(t, f, DeltaOptions{}, seed)
	checkLocations(t, full, target, bs, seed)
	if got, want := foundBlocks(full), blockSpan([2]int64{0, 24}, [2]int64{30, 32}, [2]int64{40, 70}, [2]int64{80, 82}, [2]int64{83, 85}, [2]int64{86, 98}); !reflect.DeepEqual(got, want) {
		t.Fatalf("full scan found %v, want %v", got, want)
	}
	checkSkim(t, f, target, seed, DeltaOptions{Skim: 16 << 10},
		blockSpan([2]int64{0, 24}, [2]int64{30, 32}, [2]int64{40, 70}, [2]int64{83, 85}, [2]int64{86, 98}))
}

// TestDeltaSkimTiles checks that a skimming scan skims from the start of
// every tile but a seed's first (block size 512, Skim 16 KiB, tiles of 64
// KiB): in the second tile, a pair of target blocks at 70,000, between the
// windows at 65,536 and 73,728, is skimmed over (a full scan of the tile's
// first 16 KiB would have found it), and a run at 100,000, which the window
// at 98,304 falls on, is found; the scan goes back from it to 83,616 only.
// The first tile begins with a run, found as always.
func TestDeltaSkimTiles(t *testing.T) {
	const bs = 512
	target := randData(910, 100*bs)
	seed := randData(911, 128<<10)
	put := func(at, first, n int) { copy(seed[at:], target[first*bs:(first+n)*bs]) }
	put(0, 0, 24)
	put(70000, 60, 2)
	put(100000, 70, 20)
	f := makeControl(t, target, bs, seq2)
	full := runDelta(t, f, DeltaOptions{tile: 64 << 10}, seed)
	if got, want := foundBlocks(full), blockSpan([2]int64{0, 24}, [2]int64{60, 62}, [2]int64{70, 90}); !reflect.DeepEqual(got, want) {
		t.Fatalf("full scan found %v, want %v", got, want)
	}
	checkSkim(t, f, target, seed, DeltaOptions{Skim: 16 << 10, tile: 64 << 10}, blockSpan([2]int64{0, 24}, [2]int64{70, 90}))
}

// foundBlocks lists the blocks m has a location for.
func foundBlocks(m *Matches) []int64 {
	var got []int64
	for i := range m.Blocks() {
		if m.Has(i) {
			got = append(got, i)
		}
	}
	return got
}

// blockSpan lists the blocks of the half-open ranges given.
func blockSpan(ranges ...[2]int64) []int64 {
	var s []int64
	for _, r := range ranges {
		for i := r[0]; i < r[1]; i++ {
			s = append(s, i)
		}
	}
	return s
}

// checkSkim scans seed for the blocks of f (target's control file) with
// opts, with 1 and 3 workers and two segment sizes, and checks that each
// scan finds the blocks want, at the right places.
func checkSkim(t *testing.T, f *control.File, target, seed []byte, opts DeltaOptions, want []int64) {
	t.Helper()
	for _, workers := range []int{1, 3} {
		for _, seg := range []int64{0, 3 * int64(f.Blocksize)} {
			o := opts
			o.Workers, o.SegmentSize = workers, seg
			m := runDelta(t, f, o, seed)
			checkLocations(t, m, target, f.Blocksize, seed)
			if got := foundBlocks(m); !reflect.DeepEqual(got, want) {
				t.Errorf("workers %d segment %d: skimming found %v, want %v", workers, seg, got, want)
			}
		}
	}
}
