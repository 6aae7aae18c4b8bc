package seedscan

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func controlOf(t *testing.T, data []byte, bs int) *control.File {
	t.Helper()
	f, err := stages.BlockChecksums(context.Background(), bytes.NewReader(data), stages.ChecksumOptions{Blocksize: bs, SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// countingReader counts the bytes read from a seed.
type countingReader struct {
	r *bytes.Reader
	n *atomic.Int64
}

func (c countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// output collects a target's blocks as Write receives them.
type output struct {
	mu   sync.Mutex
	data []byte
	bs   int
}

func (o *output) write(b stages.Block) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	off := int(b.Index) * o.bs
	copy(o.data[off:], b.Data[:min(len(b.Data), len(o.data)-off)])
	return nil
}

func TestScanManyTargetsOnce(t *testing.T) {
	const bs = 1024
	a1, a2 := randBytes(1, 50*bs+100), randBytes(2, 30*bs+7)
	b1 := randBytes(3, 40*bs)
	fresh := randBytes(4, 10*bs)
	// Targets: the tail of a1 split off, its middle plus new data, two
	// seeds concatenated, and one of another block size. (Where two targets
	// hold the same seed data at different alignments, the scan follows the
	// first run it confirms and may miss the other, as zsync does within one
	// target; a mirror copies identical files instead of scanning for them.)
	targets := [][]byte{
		a1[30*bs+3:],
		append(append([]byte{}, a1[10*bs+3:30*bs+3]...), fresh...),
		append(append([]byte{}, a2...), b1[:20*bs]...),
		append(append([]byte{}, b1...), fresh[:5*bs]...),
	}
	sizes := []int{bs, bs, bs, 2 * bs}
	var read atomic.Int64
	seeds := []stages.Seed{
		{Name: "a1", R: countingReader{bytes.NewReader(a1), &read}, Size: int64(len(a1))},
		{Name: "a2", R: countingReader{bytes.NewReader(a2), &read}, Size: int64(len(a2))},
		{Name: "b1", R: countingReader{bytes.NewReader(b1), &read}, Size: int64(len(b1))},
	}
	var ts []Target
	var outs []*output
	for i, d := range targets {
		o := &output{data: make([]byte, len(d)), bs: sizes[i]}
		outs = append(outs, o)
		ts = append(ts, Target{Control: controlOf(t, d, sizes[i]), Write: o.write})
	}
	ms, err := Scan(context.Background(), ts, seeds, Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		f := ts[i].Control
		var reused int
		for b := int64(0); b < f.Blocks(); b++ {
			if !m.Has(b) {
				continue
			}
			start, end := int(b)*sizes[i], min(int(b+1)*sizes[i], len(targets[i]))
			reused += end - start
			if !bytes.Equal(outs[i].data[start:end], targets[i][start:end]) {
				t.Fatalf("target %d block %d: written data differs", i, b)
			}
		}
		t.Logf("target %d: %d of %d bytes found", i, reused, len(targets[i]))
		// Every byte that came from a seed must have been found, except
		// at most a partial block around each seam.
		local := len(targets[i])
		switch i {
		case 1:
			local = 20 * bs
		case 3:
			local = 40 * bs
		}
		if reused < local-2*sizes[i] {
			t.Errorf("target %d: found %d bytes, want about %d", i, reused, local)
		}
	}
	// Two layouts (1 KiB and 2 KiB blocks): the seeds are read twice, not
	// once per target.
	total := int64(len(a1) + len(a2) + len(b1))
	if got := read.Load(); got > 2*total+int64(len(seeds)*4*bs) {
		t.Errorf("seeds read %d bytes; two scans of %d expected", got, total)
	}
}

func TestScanKnownBlocksAndErrors(t *testing.T) {
	const bs = 512
	d := randBytes(5, 20*bs)
	f := controlOf(t, d, bs)
	m := stages.NewMatches(f.Blocks())
	for i := int64(0); i < f.Blocks(); i++ {
		m.Set(i, 0, i*bs)
	}
	called := false
	_, err := Scan(context.Background(), []Target{{Control: f, Matches: m, Write: func(stages.Block) error { called = true; return nil }}},
		[]stages.Seed{{Name: "s", R: bytes.NewReader(d), Size: int64(len(d))}}, Options{})
	if err != nil || called {
		t.Fatalf("complete target: err %v, written %v; want nothing scanned", err, called)
	}
	bad := *f
	bad.Checksums.Rsum = bad.Checksums.Rsum[:3]
	if _, err := Scan(context.Background(), []Target{{Control: &bad}}, nil, Options{}); err == nil {
		t.Fatal("inconsistent control file accepted")
	}
}

func TestExtendFindsBlocksBetweenEdits(t *testing.T) {
	const bs = 1024
	old := randBytes(20, 64*bs)
	// Edit a few bytes in every other block: no two consecutive blocks
	// match, so the scan (seq_matches 2) finds only the unedited start.
	nw := append([]byte{}, old...)
	for b := 8; b < 64; b += 2 {
		nw[b*bs+100] ^= 0xff
	}
	f := controlOf(t, nw, bs)
	if f.HashLengths.SeqMatches != 2 {
		t.Fatalf("seq_matches %d", f.HashLengths.SeqMatches)
	}
	o := &output{data: make([]byte, len(nw)), bs: bs}
	ts := []Target{{Control: f, Write: o.write}}
	seeds := []stages.Seed{{Name: "old", R: bytes.NewReader(old), Size: int64(len(old))}}
	ms, err := Scan(context.Background(), ts, seeds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	scanned := ms[0].Found()
	n, err := Extend(context.Background(), ts, ms, seeds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Blocks 0-7 by the scan, then the 28 unedited odd blocks.
	if scanned < 8 || ms[0].Found() != 8+28 || n != ms[0].Found()-scanned {
		t.Fatalf("scan found %d blocks, extend %d more (now %d); want 36 in all", scanned, n, ms[0].Found())
	}
	for b := int64(0); b < 64; b++ {
		if ms[0].Has(b) && !bytes.Equal(o.data[b*bs:(b+1)*bs], nw[b*bs:(b+1)*bs]) {
			t.Fatalf("block %d written wrong", b)
		}
	}
}

// TestExtendReadsWhatItTries checks that Extend reads the seed data of
// the blocks it tries, once, and not whole windows around them: on a
// divergent pair of release tars the copies of 256 KiB windows were most
// of its time.
func TestExtendReadsWhatItTries(t *testing.T) {
	const bs = 1024
	old := randBytes(21, 300*bs)
	nw := append([]byte{}, old...)
	for b := 20; b < 60; b += 2 { // 20 edited blocks, 19 unedited between
		nw[b*bs+7] ^= 0xff
	}
	f := controlOf(t, nw, bs)
	o := &output{data: make([]byte, len(nw)), bs: bs}
	ts := []Target{{Control: f, Write: o.write}}
	var read atomic.Int64
	seeds := []stages.Seed{{Name: "old", R: countingReader{bytes.NewReader(old), &read}, Size: int64(len(old))}}
	ms, err := Scan(context.Background(), ts, seeds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := read.Load()
	n, err := Extend(context.Background(), ts, ms, seeds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 19 || ms[0].Found() != 300-20 {
		t.Fatalf("extend found %d blocks (now %d), want the 19 unedited ones (280)", n, ms[0].Found())
	}
	// Forward from block 19, blocks 20-58 in one read; backward from 60,
	// the edited blocks left, in that window still.
	if got := read.Load() - before; got != 39*bs {
		t.Errorf("extend read %d bytes of seed, want %d", got, 39*bs)
	}
	for b := int64(0); b < 300; b++ {
		if ms[0].Has(b) && !bytes.Equal(o.data[b*bs:(b+1)*bs], nw[b*bs:(b+1)*bs]) {
			t.Fatalf("block %d written wrong", b)
		}
	}
}

// TestExtendSharedAnchors checks that a block whose record other blocks
// share (here zero blocks) is no anchor: it may have been found at any of
// its copies, whichever a scanner reached first, and the blocks Extend
// finds must not depend on which.
func TestExtendSharedAnchors(t *testing.T) {
	const bs = 1024
	old := randBytes(22, 64*bs)
	for _, b := range []int{10, 21, 40} {
		clear(old[b*bs : (b+1)*bs])
	}
	nw := append([]byte{}, old...)
	for b := 11; b < 21; b += 2 { // 12, 14, … 20 unedited between edits
		nw[b*bs+9] ^= 0xff
	}
	f := controlOf(t, nw, bs)
	var results [][]int64
	for _, zeroAt := range []int64{-1, 40} { // zero blocks at their own place, or all at block 40's
		m := stages.NewMatches(f.Blocks())
		for i := int64(0); i < 64; i++ {
			switch {
			case i > 10 && i < 21:
			case zeroAt >= 0 && (i == 10 || i == 21 || i == 40):
				m.Set(i, 0, zeroAt*bs)
			default:
				m.Set(i, 0, i*bs)
			}
		}
		seeds := []stages.Seed{{Name: "old", R: bytes.NewReader(old), Size: int64(len(old))}}
		if _, err := Extend(context.Background(), []Target{{Control: f}}, []*stages.Matches{m}, seeds, Options{}); err != nil {
			t.Fatal(err)
		}
		var found []int64
		for i := int64(11); i < 21; i++ {
			if m.Has(i) {
				found = append(found, i)
			}
		}
		results = append(results, found)
	}
	want := []int64{12, 14, 16, 18, 20}
	for k, got := range results {
		if !slices.Equal(got, want) {
			t.Errorf("zero blocks located %s: extend found %v, want %v", []string{"in place", "at block 40"}[k], got, want)
		}
	}
}

// TestExtendFollowsEdits checks that a block Extend finds is an anchor in
// turn: a stretch edited every other block, far longer than ExtendReach
// (a binary whose addresses moved), is followed to its end.
func TestExtendFollowsEdits(t *testing.T) {
	const bs = 512
	old := randBytes(23, 300*bs)
	nw := append([]byte{}, old...)
	for b := 20; b <= 240; b += 2 {
		nw[b*bs+3] ^= 0xff
	}
	f := controlOf(t, nw, bs)
	ts := []Target{{Control: f}}
	seeds := []stages.Seed{{Name: "old", R: bytes.NewReader(old), Size: int64(len(old))}}
	ms, err := Scan(context.Background(), ts, seeds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Extend(context.Background(), ts, ms, seeds, Options{}); err != nil {
		t.Fatal(err)
	}
	for b := int64(21); b < 240; b += 2 {
		if !ms[0].Has(b) {
			t.Errorf("unedited block %d not found (%d of 300 found)", b, ms[0].Found())
		}
	}
	if want := int64(300 - 111); ms[0].Found() != want {
		t.Errorf("%d blocks found, want %d", ms[0].Found(), want)
	}
}

// TestScanScannedLastLayout checks Options.Scanned: with targets of two
// block sizes the seeds are scanned twice, and only the second scan
// reports its segments (after the first, the second still reads them),
// with the seeds' positions in the slice given to Scan.
func TestScanScannedLastLayout(t *testing.T) {
	const bs = 1024
	a, b := randBytes(11, 20*bs), randBytes(12, 12*bs+5)
	targets := []Target{
		{Control: controlOf(t, a[3*bs:15*bs], bs)},
		// New data too, so that no scan ends early (a scan that has found
		// every block skips the segments left, and reports none of them).
		{Control: controlOf(t, append(append([]byte{}, b[:8*bs]...), randBytes(14, 4*bs)...), 2*bs)},
	}
	seeds := []stages.Seed{
		{Name: "none", R: bytes.NewReader(randBytes(13, 7*bs)), Size: 7 * bs},
		{Name: "a", R: bytes.NewReader(a), Size: int64(len(a))},
		{Name: "b", R: bytes.NewReader(b), Size: int64(len(b))},
	}
	var mu sync.Mutex
	calls := map[int]int{}
	found := map[int]bool{}
	var covered [3]int64
	_, err := Scan(context.Background(), targets, seeds, Options{Scanned: func(seed int, start, end int64, f bool) {
		mu.Lock()
		defer mu.Unlock()
		calls[seed]++
		found[seed] = found[seed] || f
		covered[seed] += end - start
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		// Segments of at least 1 MiB: one per seed, reported once.
		if calls[i] != 1 || covered[i] != s.Size {
			t.Errorf("seed %s: %d calls covering %d bytes, want 1 covering %d", s.Name, calls[i], covered[i], s.Size)
		}
	}
	// The second layout (2 KiB blocks) holds b's data only.
	if found[0] || found[1] || !found[2] {
		t.Errorf("found %v, want only seed 2 (b)", found)
	}
}
