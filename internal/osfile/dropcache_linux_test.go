//go:build linux

package osfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/pagecachetest"
)

// TestDropCacheRange writes a file, flushes it so that its pages are
// clean, and drops the pages of its middle: the pages outside the range
// stay, and most inside it go (the kernel drops whole folios only, which
// may be larger than a page where the range begins and ends).
func TestDropCacheRange(t *testing.T) {
	dir := pagecachetest.TempDir(t)
	const size, chunk = 4 << 20, 64 << 10
	const from, to = 1<<20 + 100, 3 << 20
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i % 251)
	}
	for off := 0; off < size; off += chunk {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil { // dirty pages are not dropped
		t.Fatal(err)
	}
	f.Close()
	for i, r := range pagecachetest.Resident(t, p) {
		if !r {
			t.Fatalf("page %d not cached after writing it; cannot check dropping", i)
		}
	}
	if err := DropCacheRange(p, from, to-from); err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	inside, dropped := 0, 0
	for i, r := range pagecachetest.Resident(t, p) {
		lo, hi := i*ps, (i+1)*ps
		if hi <= from || lo >= to {
			if !r {
				t.Errorf("page %d (bytes %d-%d), outside the range, dropped", i, lo, hi)
			}
			continue
		}
		inside++
		if !r {
			dropped++
		}
	}
	if dropped < inside/2 {
		t.Errorf("%d of the %d pages in the range dropped, want most", dropped, inside)
	}
	if err := DropCacheRange(p, 0, 0); err != nil {
		t.Errorf("empty range: %v", err)
	}
	if err := DropCacheRange(filepath.Join(dir, "missing"), 0, 1); err == nil {
		t.Error("no error for a missing file")
	}
}
