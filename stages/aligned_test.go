package stages

import (
	"bytes"
	"testing"
)

// A run matched at another alignment must not hide a block that sits at
// its own offset: with the target as seed, everything is found. The target
// is built so that the rolling scan, after blocks 9 and 10 (copies of 0 and
// 1, found already), meets at 9*bs+bs/2 the pair of blocks 20 and 21 (made
// of the halves around it) and jumps to 11*bs+bs/2, over block 11, which
// occurs nowhere else. zsync 0.6.2 finds it.
func TestDeltaAlignedUnderMisalignedRun(t *testing.T) {
	const bs = 1024
	const h = bs / 2
	blocks := make([][]byte, 32)
	for i := range blocks {
		blocks[i] = randData(uint64(100+i), bs)
	}
	blocks[9], blocks[10] = blocks[0], blocks[1]
	blocks[20] = append(bytes.Clone(blocks[9][h:]), blocks[10][:h]...)
	blocks[21] = append(bytes.Clone(blocks[10][h:]), blocks[11][:h]...)
	target := bytes.Join(blocks, nil)
	for _, hl := range []struct {
		name string
		seq  int
	}{{"seq2", 2}, {"seq1", 1}} {
		l := seq2
		l.SeqMatches = hl.seq
		f := makeControl(t, target, bs, l)
		for _, workers := range []int{1, 3} {
			m := runDelta(t, f, DeltaOptions{Workers: workers}, target)
			if !m.Complete() {
				t.Errorf("%s, %d workers: exact seed, missing %v", hl.name, workers, missingBlocks(m))
			}
			checkLocations(t, m, target, bs, target)
		}
	}
}
