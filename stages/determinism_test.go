package stages

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// TestDeltaDeterministic scans the same seeds many times with different
// worker counts and segment sizes: the blocks found — and so the plan —
// must not depend on which worker gets to a block first, nor on how the
// seeds are cut into segments. The data repeats
// itself (moved and duplicated pieces, two seeds sharing most of it), so
// that workers often race for the same blocks.
func TestDeltaDeterministic(t *testing.T) {
	const bs = 512
	base := randData(71, 200*bs+77)
	// The target repeats pieces of itself.
	target := bytes.Clone(base)
	for k := range 6 { // pieces again, at other alignments
		from := (k*29 + 3) * bs
		target = append(target, base[from+k*77:from+k*77+20*bs]...)
	}
	s0 := mutateSeed(target, bs, 72)
	s1 := append(mutateSeed(target[len(target)/3:], bs, 73), s0[:len(s0)/2]...)
	s1 = append(s1, base[50*bs+300:90*bs]...)
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		var want []int64
		for _, seg := range []int64{4 * bs, 7*bs + 3, 1 << 20} {
			for _, workers := range []int{1, 2, 3, 4, 8} {
				for run := range 4 {
					// Tiles of 4 blocks: the scan starts afresh at their
					// boundaries whatever the segments, so that every
					// segment size must find the same blocks too.
					m := runDelta(t, f, DeltaOptions{SegmentSize: seg, Workers: workers, tile: 4 * bs}, s0, s1)
					got := missingBlocks(m)
					checkLocations(t, m, target, bs, s0, s1)
					name := fmt.Sprintf("seq %d segment %d workers %d run %d", hl.SeqMatches, seg, workers, run)
					if want == nil && seg == 4*bs && workers == 1 {
						want = append([]int64{}, got...)
						t.Logf("%s: %d of %d blocks missing", name, len(want), f.Blocks())
						continue
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s: missing blocks %v, first run %v", name, got, want)
					}
				}
			}
		}
	}
}
