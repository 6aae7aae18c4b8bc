package zsyncpipe

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// recordingSource serves ranges from memory and records which it was asked
// for.
type recordingSource struct {
	source.ReaderAt
	mu     sync.Mutex
	ranges []source.Range
}

func (s *recordingSource) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	s.mu.Lock()
	s.ranges = append(s.ranges, ranges...)
	s.mu.Unlock()
	return s.ReaderAt.ReadRanges(ctx, ranges, fn)
}

// TestSyncDeterministic runs the same sync several times with different
// worker counts: every run must make the same plan — the same bytes reused,
// the same ranges fetched. The data repeats itself, so that scanning
// workers race for the same blocks.
func TestSyncDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	base := randomBytes(rng, 5<<20)
	target := append(bytes.Clone(base), base[1<<20+77:2<<20]...)
	target = append(target, base[3<<20:3<<20+300_000]...)
	old := mutate(rng, target, 4096, 60)
	old = append(old, old[len(old)/2:len(old)/2+2<<20]...)
	f, err := Make(context.Background(), bytes.NewReader(target), MakeOptions{Filename: "t", Blocksize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	seed := filepath.Join(dir, "old")
	if err := os.WriteFile(seed, old, 0o644); err != nil {
		t.Fatal(err)
	}
	var want []source.Range
	var wantReused int64
	for i, workers := range []int{1, 2, 4, 2} {
		src := &recordingSource{ReaderAt: source.ReaderAt{R: bytes.NewReader(target)}}
		out := filepath.Join(dir, "out")
		os.Remove(out)
		sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Seeds: []string{seed}, Source: src, Workers: workers})
		if err != nil {
			t.Fatalf("workers %d: %v", workers, err)
		}
		got := src.ranges
		slices.SortFunc(got, func(a, b source.Range) int { return int(a.Start - b.Start) })
		if i == 0 {
			want, wantReused = got, sum.Reused
			t.Logf("%d ranges fetched, %d of %d bytes reused", len(want), sum.Reused, len(target))
			if len(want) == 0 || sum.Reused < int64(len(target))/2 {
				t.Fatal("the data does not exercise both the scan and the fetch")
			}
			continue
		}
		if sum.Reused != wantReused || !reflect.DeepEqual(got, want) {
			t.Errorf("workers %d: reused %d bytes and fetched %d ranges; the first run reused %d and fetched %d",
				workers, sum.Reused, len(got), wantReused, len(want))
		}
	}
}
