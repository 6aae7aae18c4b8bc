package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/source"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// randomBytes returns n bytes from rng.
func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// travel passes a control file through control.Write and control.Read, as a
// file would travel from a server to a client.
func travel(t testing.TB, f *control.File) *control.File {
	t.Helper()
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		t.Fatalf("control.Write: %v", err)
	}
	f2, err := control.Read(&buf)
	if err != nil {
		t.Fatalf("control.Read: %v", err)
	}
	return f2
}

// mutate derives a new version from old with random edits of the kinds that
// real data sees.
func mutate(rng *rand.Rand, old []byte, bs, edits int) []byte {
	d := bytes.Clone(old)
	for range edits {
		if len(d) == 0 {
			d = randomBytes(rng, rng.IntN(3*bs))
			continue
		}
		pos := rng.IntN(len(d) + 1)
		switch rng.IntN(6) {
		case 0: // insert
			d = append(d[:pos:pos], append(randomBytes(rng, rng.IntN(2*bs)+1), d[pos:]...)...)
		case 1: // delete
			end := min(len(d), pos+rng.IntN(2*bs)+1)
			d = append(d[:pos:pos], d[end:]...)
		case 2: // overwrite
			end := min(len(d), pos+rng.IntN(bs)+1)
			copy(d[pos:end], randomBytes(rng, end-pos))
		case 3: // move a piece
			end := min(len(d), pos+rng.IntN(4*bs)+1)
			piece := bytes.Clone(d[pos:end])
			d = append(d[:pos:pos], d[end:]...)
			at := rng.IntN(len(d) + 1)
			d = append(d[:at:at], append(piece, d[at:]...)...)
		case 4: // duplicate a piece
			end := min(len(d), pos+rng.IntN(3*bs)+1)
			piece := bytes.Clone(d[pos:end])
			at := rng.IntN(len(d) + 1)
			d = append(d[:at:at], append(piece, d[at:]...)...)
		case 5: // a long zero run
			d = append(d[:pos:pos], append(make([]byte, rng.IntN(5*bs)+bs), d[pos:]...)...)
		}
	}
	return d
}

// syncBytes makes a control file for target (through Write and Read, as a
// file would travel), then syncs from the seed, reading missing blocks from
// target, and returns the result and the summary.
func syncBytes(t *testing.T, seed, target []byte, mo MakeOptions) ([]byte, *Summary) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	mo.Filename = "target.bin"
	f, err := Make(ctx, bytes.NewReader(target), mo)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	f2 := travel(t, f)
	seedPath := filepath.Join(dir, "seed.bin")
	if err := os.WriteFile(seedPath, seed, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.bin")
	sum, err := Sync(ctx, SyncOptions{
		Control: f2,
		Output:  out,
		Seeds:   []string{seedPath},
		Source:  source.ReaderAt{R: bytes.NewReader(target)},
	})
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return got, sum
}

// reproducesSeeds are random seeds of TestSyncReproducesTarget that once
// failed, kept as regression cases.
var reproducesSeeds = []uint64{
	1796169150855452720, // a run found in the zero padding past a seed's end: second-pass segment beyond the seed
}

func TestSyncReproducesTarget(t *testing.T) {
	seedRNG := uint64(time.Now().UnixNano())
	if s := os.Getenv("ZSYNCPIPE_TEST_SEED"); s != "" {
		fmt.Sscan(s, &seedRNG)
	}
	t.Logf("random seed %d (set ZSYNCPIPE_TEST_SEED to repeat)", seedRNG)
	for _, seed := range append(reproducesSeeds, seedRNG) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testSyncReproducesTarget(t, seed) })
	}
}

func testSyncReproducesTarget(t *testing.T, seedRNG uint64) {
	rng := rand.New(rand.NewPCG(seedRNG, 7))
	for _, bs := range []int{256, 1024, 2048} {
		for _, legacy := range []bool{true, false} {
			sizes := []int{0, 1, bs - 1, bs, bs + 1, 7 * bs, 40*bs + 123, 200 * bs}
			for _, size := range sizes {
				name := fmt.Sprintf("bs%d/legacy=%v/size%d", bs, legacy, size)
				t.Run(name, func(t *testing.T) {
					old := make([]byte, size)
					for i := range old {
						old[i] = byte(rng.Uint32())
					}
					// Long zero runs and repeated blocks in the old data too.
					if size > 4*bs {
						clear(old[bs : 3*bs])
						copy(old[size-bs:], old[:bs])
					}
					target := mutate(rng, old, bs, 1+rng.IntN(8))
					got, sum := syncBytes(t, old, target, MakeOptions{Blocksize: bs, Legacy: legacy})
					if !bytes.Equal(got, target) {
						t.Fatalf("result differs from target (len %d vs %d)", len(got), len(target))
					}
					if sum.Reused+sum.Fetched < int64(len(target)) {
						t.Errorf("reused %d + fetched %d < target %d", sum.Reused, sum.Fetched, len(target))
					}
				})
			}
		}
	}
}

func TestSyncReusesUnchangedData(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	old := make([]byte, 1<<20)
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	target := bytes.Clone(old)
	copy(target[300000:], []byte("a small change in the middle"))
	for _, legacy := range []bool{false, true} {
		got, sum := syncBytes(t, old, target, MakeOptions{Blocksize: 2048, Legacy: legacy})
		if !bytes.Equal(got, target) {
			t.Fatal("result differs from target")
		}
		// One changed block, unless the edit straddles two: at most 2
		// blocks fetched, and with pairs (seq_matches 2) zsync may miss one
		// more block beside the change.
		if sum.Fetched > 3*2048 {
			t.Errorf("legacy=%v: fetched %d bytes for a 28-byte change", legacy, sum.Fetched)
		}
		if sum.Reused < int64(len(target))-3*2048 {
			t.Errorf("legacy=%v: reused only %d bytes", legacy, sum.Reused)
		}
	}
}

func TestSyncFailureLeavesOutputUntouched(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	target := bytes.Repeat([]byte("new data "), 10000)
	f, err := Make(ctx, bytes.NewReader(target), MakeOptions{Filename: "t", Blocksize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "t")
	old := []byte("the user's precious old file")
	if err := os.WriteFile(out, old, 0o600); err != nil {
		t.Fatal(err)
	}
	// A source serving other bytes: every fetched block fails its hash.
	bad := bytes.Repeat([]byte("BAD DATA "), 10000)
	_, err = Sync(ctx, SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(bad)}})
	if !errors.Is(err, ErrFetch) || !errors.Is(err, source.ErrCorrupt) {
		t.Fatalf("Sync with a corrupt source: err = %v, want ErrFetch and ErrCorrupt", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
		t.Fatal("existing output changed by a failed sync")
	}
	// A wrong whole-file hash: blocks are fine, the file is not accepted.
	f.SHA256[0] ^= 1
	_, err = Sync(ctx, SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("Sync with a wrong SHA-256: err = %v, want ErrVerify", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
		t.Fatal("existing output changed by a failed verification")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "t" && e.Name() != "t.part" {
			t.Errorf("unexpected file left behind: %s", e.Name())
		}
	}
}

// TestSyncProgress checks that a progress callback sees every phase of a
// sync, in bounds, while the stages run beside each other (under -race this
// also checks that reporting progress is race-free).
func TestSyncProgress(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	old := randomBytes(rng, 1<<20)
	target := mutate(rng, old, 1024, 6)
	ctx := context.Background()
	dir := t.TempDir()
	f, err := Make(ctx, bytes.NewReader(target), MakeOptions{Filename: "t", Blocksize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "old")
	if err := os.WriteFile(seed, old, 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	phases := map[string]int{}
	var bad []Progress
	_, err = Sync(ctx, SyncOptions{
		Control: f, Output: filepath.Join(dir, "t"), Seeds: []string{seed},
		Source: source.ReaderAt{R: bytes.NewReader(target)},
		Progress: func(p Progress) {
			mu.Lock()
			defer mu.Unlock()
			phases[p.Phase]++
			if p.Done < 0 || p.Total > 0 && p.Done > p.Total {
				bad = append(bad, p)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range []string{"scan", "fetch", "verify"} {
		if phases[ph] == 0 {
			t.Errorf("no progress reported for %q (got %v)", ph, phases)
		}
	}
	if len(bad) > 0 {
		t.Errorf("progress out of bounds: %+v", bad)
	}
}

// TestSyncTimeline checks the phases a Sync reports: each one that happened
// is there, in an order that the work allows (the fetch after the scan, the
// hash and the flush after the fetch, done last), and the hash that runs
// beside the pipeline has its row in the statistics.
func TestSyncTimeline(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	old := randomBytes(rng, 3<<20)
	target := mutate(rng, old, 4096, 12)
	got, sum := syncBytes(t, old, target, MakeOptions{Blocksize: 4096})
	if !bytes.Equal(got, target) {
		t.Fatal("output differs from the target")
	}
	tl := sum.Timeline
	t.Logf("timeline: %v", tl)
	if sum.Fetched == 0 {
		t.Fatal("nothing fetched: the test data has no missing blocks")
	}
	steps := []struct {
		name string
		d    time.Duration
	}{{"prepared", tl.Prepared}, {"scanned", tl.Scanned}, {"fetch start", tl.FetchStart}, {"fetched", tl.Fetched}}
	for i, s := range steps {
		if s.d <= 0 {
			t.Errorf("%s: %v, want a time", s.name, s.d)
		}
		if i > 0 && s.d < steps[i-1].d {
			t.Errorf("%s at %v, before %s at %v", s.name, s.d, steps[i-1].name, steps[i-1].d)
		}
	}
	// The hash may end a moment before the fetch stage returns, after its
	// last write; the flush starts only once the fetch is over.
	if tl.Hashed < tl.FetchStart || tl.Flushed < tl.Fetched {
		t.Errorf("hashed %v, flushed %v: before the fetch began at %v or ended at %v", tl.Hashed, tl.Flushed, tl.FetchStart, tl.Fetched)
	}
	if tl.Done < max(tl.Hashed, tl.Flushed) || tl.Done != sum.Duration {
		t.Errorf("done at %v: before the hash (%v) or the flush (%v), or not the duration %v", tl.Done, tl.Hashed, tl.Flushed, sum.Duration)
	}
	for _, name := range []string{"prepared", "scanned", "fetch", "hashed", "flushed", "done"} {
		if !strings.Contains(tl.String(), name) {
			t.Errorf("timeline %q lacks %s", tl, name)
		}
	}
	last := sum.Stages[len(sum.Stages)-1]
	if last.Name != "hash" || last.Bytes != int64(len(target)) || last.Busy <= 0 || last.Workers < 1 {
		t.Errorf("last stage row %+v, want the hash of all %d bytes", last, len(target))
	}
}

// A sync without a flush has no flush in its timeline.
func TestSyncTimelineNoFsync(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	old := randomBytes(rng, 1<<20)
	target := mutate(rng, old, 4096, 4)
	dir := t.TempDir()
	f := travel(t, mustMake(t, target))
	seed := filepath.Join(dir, "seed")
	if err := os.WriteFile(seed, old, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: filepath.Join(dir, "out"), Seeds: []string{seed},
		Source: source.ReaderAt{R: bytes.NewReader(target)}, NoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	if tl := sum.Timeline; tl.Flushed != 0 || tl.Hashed <= 0 || tl.Done <= 0 || strings.Contains(tl.String(), "flushed") {
		t.Errorf("timeline without flush: %+v (%v)", tl, tl)
	}
}

// mustMake makes the control file of data at 4 KiB blocks.
func mustMake(t *testing.T, data []byte) *control.File {
	t.Helper()
	f, err := Make(context.Background(), bytes.NewReader(data), MakeOptions{Filename: "out", Blocksize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// lyingSource serves the target from good, but the bytes at lie from
// bad: for the first `times` requests that carry them, or always when
// times is negative. It counts the requests for each block.
type lyingSource struct {
	good, bad []byte
	lie       source.Range
	times     int
	bs        int64
	mu        sync.Mutex
	asked     map[int64]int // block -> requests
}

func (s *lyingSource) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	for _, r := range ranges {
		data := s.good[r.Start:r.End]
		s.mu.Lock()
		for b := r.Start / s.bs; b*s.bs < r.End; b++ {
			s.asked[b]++
		}
		if r.Start < s.lie.End && s.lie.Start < r.End && s.times != 0 {
			s.times--
			data = s.bad[r.Start:r.End]
		}
		s.mu.Unlock()
		if err := fn(r, bytes.NewReader(data)); err != nil {
			return err
		}
	}
	return nil
}

// TestSyncUncheckedRepair checks what a sync does with blocks fetched
// unchecked when the source lies: the whole-file hash fails, every block
// is checked, and only the bad ones are fetched again, checked this time.
// A source that lied once is then right; one that lies again fails the
// sync with ErrCorrupt, and one that lies in every block too; the
// existing output is never touched and nothing bad is renamed into place.
func TestSyncUncheckedRepair(t *testing.T) {
	ctx := context.Background()
	const bs = 1024
	rng := rand.New(rand.NewPCG(7, 8))
	target := randomBytes(rng, 200*bs+333)
	for _, tc := range []struct {
		name  string
		lie   source.Range // bytes the source gets wrong
		times int          // requests it lies in; -1: all
		ok    bool
		sha1  bool // a control file with SHA-1 only: blocks are checked on arrival
	}{
		{name: "one-block-once", lie: source.Range{Start: 77*bs + 5, End: 77*bs + 6}, times: 1, ok: true},
		{name: "last-block-once", lie: source.Range{Start: 200*bs + 300, End: 200*bs + 301}, times: 1, ok: true},
		{name: "whole-file-once", lie: source.Range{Start: 0, End: int64(len(target))}, times: 1, ok: true},
		{name: "one-block-always", lie: source.Range{Start: 77*bs + 5, End: 77*bs + 6}, times: -1},
		{name: "whole-file-always", lie: source.Range{Start: 0, End: int64(len(target))}, times: -1},
		{name: "sha1-one-block-once", lie: source.Range{Start: 77*bs + 5, End: 77*bs + 6}, times: 1, sha1: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := Make(ctx, bytes.NewReader(target), MakeOptions{Filename: "t", Blocksize: bs})
			if err != nil {
				t.Fatal(err)
			}
			if tc.sha1 {
				sum := sha1.Sum(target)
				f.SHA1, f.SHA256, f.SHA256Chain = sum[:], nil, nil
			}
			out := filepath.Join(dir, "t")
			old := []byte("the user's precious old file")
			if err := os.WriteFile(out, old, 0o600); err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(target)
			for i := tc.lie.Start; i < tc.lie.End; i++ {
				bad[i] ^= 0x5a
			}
			src := &lyingSource{good: target, bad: bad, lie: tc.lie, times: tc.times, bs: bs, asked: map[int64]int{}}
			var logs []string
			sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, Source: src, Fetch: stages.FetchLimits{Concurrency: 1},
				Logf: func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }})
			got, _ := os.ReadFile(out)
			if !tc.ok {
				if !errors.Is(err, ErrFetch) || !errors.Is(err, source.ErrCorrupt) {
					t.Fatalf("err = %v, want ErrFetch and ErrCorrupt", err)
				}
				if !bytes.Equal(got, old) {
					t.Fatal("existing output changed by a failed sync")
				}
				return
			}
			if err != nil {
				t.Fatalf("Sync: %v (log %q)", err, logs)
			}
			if !bytes.Equal(got, target) {
				t.Fatal("output differs from the target")
			}
			if sum.Fetched != int64(len(target)) {
				t.Errorf("fetched %d bytes, want %d", sum.Fetched, len(target))
			}
			// The bad blocks were asked for twice, the others once.
			for b := range int64(201) {
				want := 1
				if b*bs < tc.lie.End && tc.lie.Start < (b+1)*bs {
					want = 2
				}
				if src.asked[b] != want {
					t.Errorf("block %d requested %d times, want %d", b, src.asked[b], want)
				}
			}
			if len(logs) != 1 || !strings.Contains(logs[0], "fetched again") {
				t.Errorf("log %q: want one line about blocks fetched again", logs)
			}
		})
	}
}

// TestSyncHandedPartIgnoresOutput checks that a Sync going on from a
// partial result handed over by Mirror (SyncOptions.part) does not look
// at Output: neither to find it up to date nor as a seed; Mirror's scan
// has used every local copy already.
func TestSyncHandedPartIgnoresOutput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 10))
	target := randomBytes(rng, 20*1024+5)
	f, err := Make(ctx, bytes.NewReader(target), MakeOptions{Filename: "t", Blocksize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "t")
	if err := os.WriteFile(out, target, 0o644); err != nil { // up to date
		t.Fatal(err)
	}
	part, err := openPart(out, f, 0o644, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer part.close()
	sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, part: part, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.UpToDate || len(sum.Seeds) != 0 || sum.Fetched != int64(len(target)) {
		t.Errorf("up to date %v, seeds %q, fetched %d: want the target fetched from the handed-over part, %d bytes", sum.UpToDate, sum.Seeds, sum.Fetched, len(target))
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, target) {
		t.Error("output differs from the target")
	}
}
