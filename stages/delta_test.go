package stages

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

var (
	seq1 = control.HashLengths{SeqMatches: 1, RsumBytes: 4, StrongBytes: 16}
	seq2 = control.HashLengths{SeqMatches: 2, RsumBytes: 2, StrongBytes: 4}
)

func runDelta(t *testing.T, f *control.File, opts DeltaOptions, seeds ...[]byte) *Matches {
	t.Helper()
	var ss []Seed
	for i, s := range seeds {
		ss = append(ss, seedOf(fmt.Sprint("seed", i), s))
	}
	m, err := Delta(context.Background(), f, ss, opts)
	if err != nil {
		t.Fatalf("Delta: %v", err)
	}
	return m
}

// missingBlocks lists the blocks without a location.
func missingBlocks(m *Matches) []int64 {
	var out []int64
	for i := range m.Blocks() {
		if !m.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// TestDeltaExactCopy checks that a seed equal to the target yields every
// block, at its own offset.
func TestDeltaExactCopy(t *testing.T) {
	for _, hl := range []control.HashLengths{seq1, seq2, {}} {
		for _, bs := range []int{64, 1024} {
			for _, n := range []int{1, bs - 1, bs, bs + 1, 2 * bs, 37*bs + 11, 64 * bs} {
				t.Run(fmt.Sprintf("seq%d/bs%d/n%d", hl.SeqMatches, bs, n), func(t *testing.T) {
					target := randData(uint64(n), n)
					f := makeControl(t, target, bs, hl)
					m := runDelta(t, f, DeltaOptions{SegmentSize: 8 * int64(bs)}, target)
					if !m.Complete() || m.Found() != f.Blocks() {
						t.Fatalf("found %d of %d blocks; missing %v", m.Found(), f.Blocks(), missingBlocks(m))
					}
					for i := range m.Blocks() {
						if s, off, _ := m.Lookup(i); s != 0 || off != i*int64(bs) {
							t.Errorf("block %d at seed %d offset %d, want 0 %d", i, s, off, i*int64(bs))
						}
					}
				})
			}
		}
	}
}

// TestDeltaShiftedSeed checks that the scan finds blocks at every
// misalignment: a seed with k extra bytes in front finds every block; a seed
// missing the first k bytes finds every block but the first.
func TestDeltaShiftedSeed(t *testing.T) {
	const bs = 256
	target := randData(11, 40*bs+77)
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		for _, k := range []int{1, 2, 7, bs / 2, bs - 1} {
			t.Run(fmt.Sprintf("seq%d/k%d", hl.SeqMatches, k), func(t *testing.T) {
				prefixed := append(randData(uint64(k), k), target...)
				m := runDelta(t, f, DeltaOptions{}, prefixed)
				if !m.Complete() {
					t.Errorf("prefixed seed: missing %v", missingBlocks(m))
				}
				checkLocations(t, m, target, bs, prefixed)

				cut := target[k:]
				m = runDelta(t, f, DeltaOptions{}, cut)
				if got := missingBlocks(m); len(got) != 1 || got[0] != 0 {
					t.Errorf("cut seed: missing %v, want [0]", got)
				}
				checkLocations(t, m, target, bs, cut)
			})
		}
	}
}

// TestDeltaDuplicateBlocks checks that a block occurring several times in
// the target gets a location at every position, holding its data, even
// though the seed holds it once (or once as a pair).
func TestDeltaDuplicateBlocks(t *testing.T) {
	const bs = 512
	rec := randData(99, bs)
	var target []byte
	target = append(target, make([]byte, 8*bs)...) // a zero run
	target = append(target, randData(1, 4*bs)...)
	for range 5 {
		target = append(target, rec...) // a repeated record
	}
	target = append(target, randData(2, 3*bs)...)
	target = append(target, rec...)
	target = append(target, randData(3, bs)...)
	target = append(target, make([]byte, 3*bs)...)
	target = append(target, randData(4, 2*bs)...)
	target = append(target, rec...) // lone copies
	target = append(target, randData(5, bs)...)

	isDup := func(i int64) bool {
		b := blockOf(target, bs, i)
		return bytes.Equal(b, make([]byte, bs)) || bytes.Equal(b, rec)
	}
	for _, tc := range []struct {
		hl   control.HashLengths
		seed []byte
	}{
		// seq 1: one copy of each suffices.
		{seq1, bytes.Join([][]byte{randData(6, 1000), make([]byte, bs), randData(7, 333), rec, randData(8, 100)}, nil)},
		// seq 2: the pairs zero,zero and rec,rec.
		{seq2, bytes.Join([][]byte{randData(6, 1000), make([]byte, 2*bs), randData(7, 333), rec, rec, randData(8, 100)}, nil)},
	} {
		t.Run(fmt.Sprintf("seq%d", tc.hl.SeqMatches), func(t *testing.T) {
			f := makeControl(t, target, bs, tc.hl)
			m := runDelta(t, f, DeltaOptions{}, tc.seed)
			for i := range f.Blocks() {
				if isDup(i) && !m.Has(i) {
					t.Errorf("duplicate block %d has no location", i)
				}
				if !isDup(i) && m.Has(i) {
					t.Errorf("unique block %d was found in a seed that lacks it", i)
				}
			}
			checkLocations(t, m, target, bs, tc.seed)
		})
	}

	// The target itself as seed: everything found, duplicates included.
	f := makeControl(t, target, bs, seq2)
	m := runDelta(t, f, DeltaOptions{SegmentSize: 4 * bs}, target)
	if !m.Complete() {
		t.Errorf("exact seed: missing %v", missingBlocks(m))
	}
	checkLocations(t, m, target, bs, target)
}

// TestDeltaSeqMatches2 checks the seq_matches 2 rule: a lone matching block
// between two changed blocks is not trusted by a fresh match, while a run
// continued from a confirmed pair is, and the last block may match alone.
func TestDeltaSeqMatches2(t *testing.T) {
	const bs = 512
	const n = 20
	for _, tail := range []int{0, 100} { // last block full or short
		target := randData(21, n*bs+tail)
		blocks := n
		if tail > 0 {
			blocks++
		}
		last := int64(blocks - 1)
		change := func(d []byte, i int) {
			copy(d[i*bs:], randData(uint64(1000+i), min(bs, len(d)-i*bs)))
		}
		t.Run(fmt.Sprintf("tail%d", tail), func(t *testing.T) {
			// Blocks 4 and 6 changed: 5 is alone.
			seed := bytes.Clone(target)
			change(seed, 4)
			change(seed, 6)
			f2 := makeControl(t, target, bs, seq2)
			m := runDelta(t, f2, DeltaOptions{}, seed)
			if got := missingBlocks(m); !equalInts(got, []int64{4, 5, 6}) {
				t.Errorf("seq 2: missing %v, want [4 5 6]", got)
			}
			// With seq_matches 1 the lone block is trusted.
			f1 := makeControl(t, target, bs, seq1)
			m = runDelta(t, f1, DeltaOptions{}, seed)
			if got := missingBlocks(m); !equalInts(got, []int64{4, 6}) {
				t.Errorf("seq 1: missing %v, want [4 6]", got)
			}

			// The block before the last changed: the last matches alone.
			seed = bytes.Clone(target)
			change(seed, int(last-1))
			m = runDelta(t, f2, DeltaOptions{}, seed)
			if got := missingBlocks(m); !equalInts(got, []int64{last - 1}) {
				t.Errorf("seq 2, block %d changed: missing %v", last-1, got)
			}
			checkLocations(t, m, target, bs, seed)

			// The last block alone at the end of an unrelated seed.
			lastData := target[int(last)*bs:]
			seed = append(randData(5, 3*bs+17), lastData...)
			m = runDelta(t, f2, DeltaOptions{}, seed)
			if m.Found() != 1 || !m.Has(last) {
				t.Errorf("seq 2, lone last block: found %d, last %v", m.Found(), m.Has(last))
			}
			checkLocations(t, m, target, bs, seed)

			// Any other block alone in an unrelated seed is not trusted.
			seed = bytes.Join([][]byte{randData(6, 777), target[3*bs : 4*bs], randData(7, 999)}, nil)
			m = runDelta(t, f2, DeltaOptions{}, seed)
			if m.Found() != 0 {
				t.Errorf("seq 2, lone block 3: found %d blocks (missing %v)", m.Found(), missingBlocks(m))
			}
			m = runDelta(t, f1, DeltaOptions{}, seed)
			if m.Found() != 1 || !m.Has(3) {
				t.Errorf("seq 1, lone block 3: found %d blocks, block 3 %v", m.Found(), m.Has(3))
			}
		})
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDeltaSeveralSeeds checks that the target may be spread over seeds:
// the first part in one, the rest in another, cut inside a block (which is
// then lost).
func TestDeltaSeveralSeeds(t *testing.T) {
	const bs = 1024
	target := randData(31, 30*bs+500)
	cut := 12*bs + 300
	s0 := append(bytes.Clone(target[:cut]), randData(1, 5000)...)
	s1 := append(randData(2, 3000), target[cut:]...)
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		m := runDelta(t, f, DeltaOptions{}, s0, s1)
		if got := missingBlocks(m); !equalInts(got, []int64{12}) {
			t.Errorf("seq %d: missing %v, want [12]", hl.SeqMatches, got)
		}
		for i := range m.Blocks() {
			s, _, ok := m.Lookup(i)
			if want := 0; i > 12 {
				want = 1
				if ok && s != want {
					t.Errorf("block %d in seed %d, want %d", i, s, want)
				}
			} else if ok && s != want {
				t.Errorf("block %d in seed %d, want %d", i, s, want)
			}
		}
		checkLocations(t, m, target, bs, s0, s1)
	}
}

// mutateSeed makes an old version of target with scattered edits:
// insertions, deletions and overwrites every few blocks.
func mutateSeed(target []byte, bs int, seed uint64) []byte {
	rng := randData(seed, len(target)/bs+1)
	var out []byte
	for i := 0; i < len(target); i += bs {
		blk := target[i:min(i+bs, len(target))]
		switch rng[i/bs] % 8 {
		case 0: // insert a few bytes before the block
			out = append(out, randData(uint64(i), int(rng[i/bs])%50+1)...)
			out = append(out, blk...)
		case 1: // drop a few bytes of the block
			out = append(out, blk[min(len(blk), 13):]...)
		case 2: // overwrite part of the block
			b := bytes.Clone(blk)
			copy(b[len(b)/2:], randData(uint64(i), 10))
			out = append(out, b...)
		default:
			out = append(out, blk...)
		}
	}
	return out
}

// TestDeltaSegmentBoundaries checks that cutting a seed into small segments
// scanned in parallel finds the same blocks as one big segment, though many
// matches straddle the boundaries.
func TestDeltaSegmentBoundaries(t *testing.T) {
	const bs = 512
	target := randData(41, 300*bs+123)
	seed := mutateSeed(target, bs, 42)
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		// The scan starts afresh at every tile boundary (4 blocks here),
		// whatever the segments: they cut the seed at tile boundaries.
		whole := runDelta(t, f, DeltaOptions{SegmentSize: 1 << 30, Workers: 1, tile: 4 * bs}, seed)
		if whole.Found() < f.Blocks()/2 {
			t.Fatalf("seq %d: whole scan found only %d of %d blocks", hl.SeqMatches, whole.Found(), f.Blocks())
		}
		for _, seg := range []int64{1, 4 * bs, 4*bs + 1, 5*bs - 1, 16 * bs} {
			for _, workers := range []int{1, 3} {
				m := runDelta(t, f, DeltaOptions{SegmentSize: seg, Workers: workers, tile: 4 * bs}, seed)
				if m.Found() != whole.Found() {
					t.Errorf("seq %d segment %d workers %d: found %d, whole scan %d",
						hl.SeqMatches, seg, workers, m.Found(), whole.Found())
				}
				for i := range m.Blocks() {
					if m.Has(i) != whole.Has(i) {
						t.Errorf("seq %d segment %d: block %d found %v, whole scan %v", hl.SeqMatches, seg, i, m.Has(i), whole.Has(i))
					}
				}
				checkLocations(t, m, target, bs, seed)
			}
		}
	}
}

// TestDeltaShortSeed checks seeds shorter than a block: they match the
// target's short last block through zsync's zero padding, and nothing else.
func TestDeltaShortSeed(t *testing.T) {
	const bs = 1024
	target := randData(51, 2*bs+300)
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		tail := target[2*bs:]
		m := runDelta(t, f, DeltaOptions{}, tail)
		if m.Found() != 1 || !m.Has(2) {
			t.Errorf("seq %d: tail seed found %d blocks, last %v", hl.SeqMatches, m.Found(), m.Has(2))
		}
		checkLocations(t, m, target, bs, tail)
		m = runDelta(t, f, DeltaOptions{}, []byte("short"), nil)
		if m.Found() != 0 {
			t.Errorf("seq %d: unrelated short seeds found %d blocks", hl.SeqMatches, m.Found())
		}
	}
	// A target shorter than a block, seed equal to it.
	small := randData(52, 100)
	f := makeControl(t, small, bs, control.HashLengths{})
	if m := runDelta(t, f, DeltaOptions{}, small); !m.Complete() {
		t.Errorf("one short block: not found")
	}
}

// TestDeltaEmptyTarget checks that an empty target needs nothing.
func TestDeltaEmptyTarget(t *testing.T) {
	f := makeControl(t, nil, 2048, control.HashLengths{})
	if f.Blocks() != 0 {
		t.Fatalf("empty target has %d blocks", f.Blocks())
	}
	m := runDelta(t, f, DeltaOptions{}, randData(1, 10000))
	if m.Blocks() != 0 || !m.Complete() || m.Found() != 0 {
		t.Errorf("empty target: %d blocks, complete %v", m.Blocks(), m.Complete())
	}
}

// TestDeltaCancelled checks that a cancelled context ends the scan with an
// error: before it starts, and in the middle of a long rolling scan.
func TestDeltaCancelled(t *testing.T) {
	const bs = 4096
	target := randData(61, 256*bs)
	f := makeControl(t, target, bs, control.HashLengths{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m, err := Delta(ctx, f, []Seed{seedOf("s", target)}, DeltaOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("pre-cancelled: err %v, found %d", err, m.Found())
	}

	big := randData(62, 64<<20) // nothing matches: the slow path throughout
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err = Delta(ctx, f, []Seed{seedOf("big", big)}, DeltaOptions{Workers: 2})
	if el := time.Since(start); !errors.Is(err, context.Canceled) || el > 2*time.Second {
		t.Errorf("cancelled mid-scan: err %v after %v", err, el)
	}
}

// TestDeltaOnBlocks checks that OnBlocks delivers the target's data for
// every block found, and that its error stops the scan.
func TestDeltaOnBlocks(t *testing.T) {
	const bs = 512
	rec := randData(70, bs)
	target := bytes.Join([][]byte{randData(71, 50*bs), rec, rec, randData(72, 10*bs), rec, randData(73, 20*bs+99)}, nil)
	seed := mutateSeed(target, bs, 74)
	for _, hl := range []control.HashLengths{seq1, seq2} {
		f := makeControl(t, target, bs, hl)
		var mu sync.Mutex
		delivered := make(map[int64]bool)
		m := runDelta(t, f, DeltaOptions{SegmentSize: 8 * bs, OnBlocks: func(b Block) error {
			if len(b.Data) == 0 {
				t.Errorf("empty run at block %d", b.Index)
			}
			for j := 0; j*bs < len(b.Data); j++ {
				i := b.Index + int64(j)
				got := b.Data[j*bs : min((j+1)*bs, len(b.Data))]
				if !bytes.Equal(got, blockOf(target, bs, i)[:len(got)]) {
					t.Errorf("OnBlocks: block %d data differs from the target's", i)
				}
				mu.Lock()
				delivered[i] = true
				mu.Unlock()
			}
			return nil
		}}, seed)
		if m.Found() < f.Blocks()/2 {
			t.Fatalf("found only %d of %d", m.Found(), f.Blocks())
		}
		for i := range m.Blocks() {
			if m.Has(i) != delivered[i] {
				t.Errorf("seq %d block %d: found %v, delivered %v", hl.SeqMatches, i, m.Has(i), delivered[i])
			}
		}

		stop := errors.New("stop")
		_, err := Delta(context.Background(), f, []Seed{seedOf("s", seed)}, DeltaOptions{OnBlocks: func(Block) error { return stop }})
		if !errors.Is(err, stop) {
			t.Errorf("OnBlocks error: Delta returned %v", err)
		}
	}
}

// TestDeltaKnownMatches checks a Matches passed in with blocks already
// known: their locations are kept, the rest are found, and a complete
// record needs no scan at all.
func TestDeltaKnownMatches(t *testing.T) {
	const bs = 512
	target := randData(81, 40*bs)
	f := makeControl(t, target, bs, seq2)
	elsewhere := randData(82, 100)
	known := NewMatches(f.Blocks())
	for _, i := range []int64{0, 1, 2, 17, 39} {
		known.Set(i, 1, 7777+i) // "in another seed"
	}
	m := runDelta(t, f, DeltaOptions{Matches: known}, target)
	if m != known {
		t.Errorf("Delta returned another Matches")
	}
	if !m.Complete() {
		t.Errorf("missing %v", missingBlocks(m))
	}
	for i := range m.Blocks() {
		s, off, _ := m.Lookup(i)
		switch i {
		case 0, 1, 2, 17, 39:
			if s != 1 || off != 7777+i {
				t.Errorf("known block %d moved to seed %d offset %d", i, s, off)
			}
		default:
			if s != 0 || off != i*bs {
				t.Errorf("block %d at seed %d offset %d", i, s, off)
			}
		}
	}
	_ = elsewhere

	full := NewMatches(f.Blocks())
	for i := range full.Blocks() {
		full.Set(i, 0, i*bs)
	}
	calls := 0
	_, err := Delta(context.Background(), f, []Seed{seedOf("s", target)}, DeltaOptions{Matches: full, OnBlocks: func(Block) error { calls++; return nil }})
	if err != nil || calls != 0 {
		t.Errorf("complete Matches: err %v, %d OnBlocks calls", err, calls)
	}

	if _, err := Delta(context.Background(), f, nil, DeltaOptions{Matches: NewMatches(f.Blocks() + 1)}); err == nil {
		t.Errorf("Matches of the wrong size accepted")
	}
}

// TestDeltaMD4 checks the scan with MD4 records and a caller's hasher, and
// that a hasher of the wrong algorithm is refused.
func TestDeltaMD4(t *testing.T) {
	const bs = 1024
	target := randData(91, 64*bs+5)
	seed := mutateSeed(target, bs, 92)
	f, err := BlockChecksums(context.Background(), bytes.NewReader(target), ChecksumOptions{Blocksize: bs, Algorithm: strong.MD4})
	if err != nil {
		t.Fatal(err)
	}
	h := newHasher(t, strong.MD4, simd.Options{})
	m, err := Delta(context.Background(), f, []Seed{seedOf("s", seed)}, DeltaOptions{Hasher: h})
	if err != nil {
		t.Fatal(err)
	}
	if m.Found() < f.Blocks()/2 {
		t.Errorf("found %d of %d", m.Found(), f.Blocks())
	}
	checkLocations(t, m, target, bs, seed)
	md5h := newHasher(t, strong.MD5, simd.Options{})
	if _, err := Delta(context.Background(), f, nil, DeltaOptions{Hasher: md5h}); err == nil {
		t.Errorf("MD5 hasher accepted for MD4 records")
	}
}

// weakTwin returns a copy of block with the same rolling checksum but other
// content: adding 1, -2, +1 at three consecutive bytes keeps both a and b.
func weakTwin(block []byte) []byte {
	d := bytes.Clone(block)
	for j := 0; j+2 < len(d); j++ {
		if d[j] < 255 && d[j+1] >= 2 && d[j+2] < 255 {
			d[j]++
			d[j+1] -= 2
			d[j+2]++
			return d
		}
	}
	panic("no room for a twin")
}

// TestDeltaWeakCollision checks that the strong hash, not the rolling
// checksum, decides: a seed block with the target block's rolling checksum
// but other data is never taken, neither as the second block of a pair
// (which would let the first, lone block in) nor when following a run.
func TestDeltaWeakCollision(t *testing.T) {
	const bs = 512
	target := randData(401, 20*bs)
	twin := weakTwin(target[7*bs : 8*bs])
	if rollsumOf(twin) != rollsumOf(target[7*bs:8*bs]) || bytes.Equal(twin, target[7*bs:8*bs]) {
		t.Fatal("weakTwin is not a twin")
	}
	seed := bytes.Clone(target)
	copy(seed[5*bs:], randData(402, bs)) // block 5 changed
	copy(seed[7*bs:], twin)              // block 7 a weak twin
	hl := control.HashLengths{SeqMatches: 2, RsumBytes: 4, StrongBytes: 16}
	f := makeControl(t, target, bs, hl)
	m := runDelta(t, f, DeltaOptions{}, seed)
	// 6 is alone between 5 and 7's twin.
	if got := missingBlocks(m); !equalInts(got, []int64{5, 6, 7}) {
		t.Errorf("seq 2: missing %v, want [5 6 7]", got)
	}
	// Following a run from block 0 must stop at the twin too.
	seed = bytes.Clone(target)
	copy(seed[3*bs:], weakTwin(target[3*bs:4*bs]))
	for _, hl := range []control.HashLengths{hl, seq1} {
		f := makeControl(t, target, bs, hl)
		m = runDelta(t, f, DeltaOptions{}, seed)
		if got := missingBlocks(m); !equalInts(got, []int64{3}) {
			t.Errorf("seq %d, twin of block 3: missing %v, want [3]", hl.SeqMatches, got)
		}
		checkLocations(t, m, target, bs, seed)
	}
}

func rollsumOf(b []byte) uint32 { return rollsum.Block(b).Packed() }

// TestDeltaProgress checks that Progress adds up to the seed bytes scanned
// when the scan cannot end early.
func TestDeltaProgress(t *testing.T) {
	const bs = 512
	target := randData(501, 50*bs)
	f := makeControl(t, target, bs, seq2)
	s0, s1 := randData(502, 33*bs+5), mutateSeed(target, bs, 503)
	var total atomic.Int64
	runDelta(t, f, DeltaOptions{SegmentSize: 4 * bs, Progress: func(n int64) { // cumulative: keep the largest
		for old := total.Load(); n > old && !total.CompareAndSwap(old, n); old = total.Load() {
		}
	}}, s0, s1)
	if want := int64(len(s0) + len(s1)); total.Load() != want {
		t.Errorf("progress %d, want %d", total.Load(), want)
	}
}

// TestDeltaScanned checks DeltaOptions.Scanned: one call per segment of
// the first pass, with ranges that cut each seed, and found set for the
// segment that holds the target's data and for no other.
func TestDeltaScanned(t *testing.T) {
	const bs = 512
	target := randData(601, 16*bs)
	f := makeControl(t, target, bs, seq2)
	// Seed 0: five segments of 8 blocks, blocks 4-7 of the target inside
	// the third (at 17 blocks); seed 1 holds nothing of it.
	s0 := randData(602, 40*bs)
	copy(s0[17*bs:], target[4*bs:8*bs])
	s1 := randData(603, 9*bs+7)
	type part struct {
		seed       int
		start, end int64
		found      bool
	}
	var mu sync.Mutex
	var parts []part
	m := runDelta(t, f, DeltaOptions{SegmentSize: 8 * bs, tile: 4 * bs, Scanned: func(seed int, start, end int64, found bool) {
		mu.Lock()
		parts = append(parts, part{seed, start, end, found})
		mu.Unlock()
	}}, s0, s1)
	if !m.Has(4) || !m.Has(7) {
		t.Fatalf("blocks 4-7 not found: missing %v", missingBlocks(m))
	}
	slices.SortFunc(parts, func(a, b part) int { return cmp.Or(cmp.Compare(a.seed, b.seed), cmp.Compare(a.start, b.start)) })
	want := []part{
		{0, 0, 8 * bs, false}, {0, 8 * bs, 16 * bs, false}, {0, 16 * bs, 24 * bs, true},
		{0, 24 * bs, 32 * bs, false}, {0, 32 * bs, 40 * bs, false},
		{1, 0, 8 * bs, false}, {1, 8 * bs, 9*bs + 7, false},
	}
	if !slices.Equal(parts, want) {
		t.Errorf("Scanned calls\n got %v\nwant %v", parts, want)
	}
}
