//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// TestSyncFIFOSeed: a FIFO without a writer given as a seed blocked open(2)
// for ever; it is refused at once.
func TestSyncFIFOSeed(t *testing.T) {
	old, target := netData(13)
	dir, out := netDir(t, old)
	f := netControl(t, target, false)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Sync(ctx, SyncOptions{Control: f, Output: out, Seeds: []string{fifo}, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if !errors.Is(err, ErrUsage) || !errors.Is(err, osfile.ErrNotRegular) {
		t.Fatalf("Sync with a FIFO seed = %v, want ErrUsage and ErrNotRegular", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing the FIFO took %v", d)
	}
	netCheckResult(t, out, old)
}
