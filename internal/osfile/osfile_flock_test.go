//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package osfile

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenRegularFIFO: a FIFO without a writer blocks open(2) for ever; it
// must be refused at once.
func TestOpenRegularFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := OpenRegular(ctx, path)
	if !errors.Is(err, ErrNotRegular) {
		t.Fatalf("OpenRegular(FIFO) = %v, want ErrNotRegular", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("OpenRegular(FIFO) took %v", d)
	}
	// The non-blocking open itself does not wait either: a FIFO swapped
	// in after the type check is caught by the check after opening.
	f, _, err := openAfterCheck(path)
	if !errors.Is(err, ErrNotRegular) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("open of a FIFO past the first check = %v, want ErrNotRegular", err)
	}
}
