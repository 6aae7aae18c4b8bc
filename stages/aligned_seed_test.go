package stages

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
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

// readLog is a seed's io.ReaderAt that records where it was read.
type readLog struct {
	data []byte
	mu   sync.Mutex
	offs []int64
}

func (r *readLog) ReadAt(b []byte, off int64) (int, error) {
	r.mu.Lock()
	r.offs = append(r.offs, off)
	r.mu.Unlock()
	return bytes.NewReader(r.data).ReadAt(b, off)
}

// An aligned seed with its chunk checksums (Seed.ChunkSums) is read only
// in the segments where a block looked for may be, and the scan finds
// there what it finds without them; sums of another length are not used,
// and sums that do not describe the seed only lose blocks.
func TestDeltaAlignedSeedChunkSums(t *testing.T) {
	const bs = 2048
	const seg = 1 << 20 // the scan's tile
	seed := randData(31, 3*seg+5000)
	other := randData(32, 40*bs)
	// Whole blocks of the seed's second MiB only, and its short last block.
	target := cat(other[:7*bs], seed[seg+10*bs:seg+60*bs], other[7*bs:], seed[3*seg+4096:])
	var c rollsum.Chunks
	c.Write(seed)
	sums := c.Sums()
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		run := func(sums []uint32) (*Matches, []int64) {
			t.Helper()
			r := &readLog{data: seed}
			s := Seed{Name: "aligned", R: r, Size: int64(len(seed)), Aligned: true, ChunkSums: sums}
			m, err := Delta(context.Background(), f, []Seed{s}, DeltaOptions{SegmentSize: seg, Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			checkLocations(t, m, target, bs, seed)
			slices.Sort(r.offs)
			return m, r.offs
		}
		without, readAll := run(nil)
		with, read := run(sums)
		if without.Found() == 0 || with.Found() != without.Found() {
			t.Errorf("seq %d: found %d blocks with chunk sums, %d without", hl.SeqMatches, with.Found(), without.Found())
		}
		// With 4-byte weak checksums the filters let nothing else through
		// here; with seq2's 2-byte ones a segment of 512 blocks holding
		// none may still be read (a false positive of the filters).
		ok := slices.Equal(read, []int64{seg, 3 * seg})
		if hl.SeqMatches == 2 {
			ok = len(read) < len(readAll) && slices.Contains(read, seg) && slices.Contains(read, 3*seg)
		}
		if len(readAll) != 4 || !ok {
			t.Errorf("seq %d: read at %v with chunk sums (%v without), want the segments at %d and %d and not all", hl.SeqMatches, read, readAll, seg, 3*seg)
		}
		if _, offs := run(sums[1:]); !slices.Equal(offs, readAll) {
			t.Errorf("seq %d: sums of another length: read at %v, want %v", hl.SeqMatches, offs, readAll)
		}
		wrong := slices.Clone(sums)
		for i := range wrong {
			wrong[i] = 0x12345678
		}
		if m, offs := run(wrong); m.Found() > without.Found() || len(offs) > len(readAll) {
			t.Errorf("seq %d: wrong sums: found %d blocks, read at %v", hl.SeqMatches, m.Found(), offs)
		}
	}
}

// The first pass reports the chunk checksums of every segment of an
// aligned seed it reads (DeltaOptions.ChunkSums): together, the seed's
// (rollsum.Chunks); none for a seed read at every offset.
func TestDeltaReportsChunkSums(t *testing.T) {
	const bs = 2048
	const seg = 1 << 20
	seed := randData(33, 2*seg+3000)
	other := randData(34, seg)
	target := cat(other[:5*bs], seed[10*bs:40*bs])
	var c rollsum.Chunks
	c.Write(seed)
	want := c.Sums()
	f := makeControl(t, target, bs, seq2)
	for _, aligned := range []bool{true, false} {
		var mu sync.Mutex
		got := make([]uint32, len(want))
		calls := 0
		opts := DeltaOptions{SegmentSize: seg, Workers: 2, ChunkSums: func(seed int, start int64, sums []uint32) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if seed != 0 || start%rollsum.ChunkSize != 0 || int(start/rollsum.ChunkSize)+len(sums) > len(got) {
				t.Errorf("seed %d, start %d, %d sums", seed, start, len(sums))
				return
			}
			copy(got[start/rollsum.ChunkSize:], sums)
		}}
		s := Seed{Name: "seed", R: bytes.NewReader(seed), Size: int64(len(seed)), Aligned: aligned}
		if _, err := Delta(context.Background(), f, []Seed{s}, opts); err != nil {
			t.Fatal(err)
		}
		switch {
		case aligned && (calls != 3 || !slices.Equal(got, want)):
			t.Errorf("aligned: %d calls, sums equal to the seed's: %v", calls, slices.Equal(got, want))
		case !aligned && calls != 0:
			t.Errorf("read at every offset: %d calls, want none", calls)
		}
	}
}
