package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A huge local control file is refused after its first bytes: it is parsed
// as a stream, not read whole.
func TestHugeLocalControlFile(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "huge.zsync")
	fh, err := os.Create(ctl)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 2 GiB of zeros that take no disk space.
	if err := fh.Truncate(2 << 30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	fh.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := runZ(t, "sync", "-o", filepath.Join(dir, "out"), ctl)
	runtime.ReadMemStats(&after)
	if r.code != exitBadControl || !strings.Contains(r.stderr, "line longer than") {
		t.Fatalf("exit %d, stderr %q; want %d and the first line refused", r.code, r.stderr, exitBadControl)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("refusing a 2 GiB control file allocated %d bytes", n)
	}
}
