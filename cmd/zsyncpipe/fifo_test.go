//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSyncFIFOSeed: a FIFO given as a seed is refused at once (it used to
// block open(2) for ever, out of reach of SIGINT), with a usage exit code.
func TestSyncFIFOSeed(t *testing.T) {
	fx := newFixture(t, 300000, "--legacy")
	fifo := filepath.Join(fx.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := runZ(t, "sync", "-i", fifo, "-o", filepath.Join(fx.dir, "out.bin"), fx.control)
	if r.code != exitUsage || !strings.Contains(r.stderr, "FIFO") {
		t.Fatalf("exit %d, want %d\nstderr: %s", r.code, exitUsage, r.stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing the FIFO took %v", d)
	}
}
