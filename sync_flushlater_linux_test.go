//go:build linux

package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/pagecachetest"
	"github.com/zsyncpipe/zsyncpipe/source"
	"golang.org/x/sys/unix"
)

// A result whose flush is left to the caller (SyncOptions.flushLater: a
// mirror's rebuilt files, flushed by its syncfs with many others) is not
// written out and waited for at the end of Sync: its pages are still dirty
// when Sync returns. Waiting for them (sync_file_range with WAIT_AFTER)
// held a rebuild's slot for as long as the mirror's syncfs under way took,
// 0.12-0.16 s for a small file, every slot at once (docs/trees-measurements.md,
// "Seventh session: flush"). A Sync that flushes the result itself leaves
// nothing dirty.
func TestSyncFlushLaterDoesNotWaitForTheDisk(t *testing.T) {
	dir := pagecachetest.TempDir(t)
	rng := rand.New(rand.NewPCG(9, 9))
	old := randomBytes(rng, 1<<20) // under writebackEvery: no early writeback
	target := mutate(rng, old, 4096, 4)
	f := travel(t, mustMake(t, target))
	seed := filepath.Join(dir, "seed")
	if err := os.WriteFile(seed, old, 0o644); err != nil {
		t.Fatal(err)
	}
	dirty := func(later bool) (pages, dirty uint64) {
		out := filepath.Join(dir, "out")
		os.Remove(out)
		if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Seeds: []string{seed},
			Source: source.ReaderAt{R: bytes.NewReader(target)}, flushLater: later}); err != nil {
			t.Fatal(err)
		}
		r, err := os.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		var cs unix.Cachestat_t
		err = unix.Cachestat(uint(r.Fd()), &unix.CachestatRange{}, &cs, 0)
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("no cachestat(2) (Linux 6.5)")
		}
		if err != nil {
			t.Fatal(err)
		}
		return cs.Cache, cs.Dirty + cs.Writeback
	}
	if pages, d := dirty(false); d != 0 {
		t.Fatalf("flushed by Sync: %d of %d pages dirty or under writeback", d, pages)
	}
	// A sync(1) of the whole machine (another program) between the end of
	// Sync and the look at its pages would clean them: a few tries.
	for try := 0; ; try++ {
		pages, d := dirty(true)
		if d > 0 {
			t.Logf("left to the caller: %d of %d pages dirty or under writeback", d, pages)
			break
		}
		if try == 2 {
			t.Fatalf("left to the caller's flush: every page of %d written before Sync returned", pages)
		}
	}
}
