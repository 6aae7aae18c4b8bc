package stages

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
)

// TestDeltaAlignedSeed checks what an aligned seed (Seed.Aligned) gives: a
// target made of whole blocks of it, wherever they sit in the target, is
// found as a rolling scan finds it; data it holds at other offsets is not.
func TestDeltaAlignedSeed(t *testing.T) {
	const bs = 256
	seed := randData(21, 30*bs+100)
	other := randData(22, 9*bs+13)
	cases := []struct {
		name   string
		target []byte
		want   int64 // blocks found in the aligned seed, -1: as many as a rolling scan
	}{
		// The seed's blocks 4…19 after 3 blocks of other data, then its
		// tail from block 25 on (its last, short block included).
		{"whole blocks", cat(other[:3*bs], seed[4*bs:20*bs], seed[25*bs:]), -1},
		{"copy", seed, -1},
		// The same data shifted by 5 bytes in the seed: not at block
		// boundaries, not found.
		{"shifted", cat(other[:3*bs], seed[4*bs+5:20*bs+5]), 0},
	}
	for _, hl := range []control.HashLengths{seq1, seq2} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("seq%d/%s", hl.SeqMatches, c.name), func(t *testing.T) {
				f := makeControl(t, c.target, bs, hl)
				rolled := runDelta(t, f, DeltaOptions{SegmentSize: 8 * bs}, seed)
				s := seedOf("aligned", seed)
				s.Aligned = true
				m, err := Delta(context.Background(), f, []Seed{s}, DeltaOptions{SegmentSize: 8 * bs})
				if err != nil {
					t.Fatal(err)
				}
				checkLocations(t, m, c.target, bs, seed)
				want := c.want
				if want < 0 {
					want = rolled.Found()
					if want == 0 {
						t.Fatal("the rolling scan found nothing")
					}
				}
				if m.Found() != want {
					t.Errorf("aligned seed: found %d blocks, want %d (rolling scan: %d)", m.Found(), want, rolled.Found())
				}
				for i := range m.Blocks() {
					if _, off, ok := m.Lookup(i); ok && off%bs != 0 {
						t.Errorf("block %d found at offset %d, not a multiple of %d", i, off, bs)
					}
				}
			})
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
