//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package osfile

import (
	"context"
	"errors"
	"io"
	"os"
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

// TestOpenFIFOCancel: Open of a FIFO without a writer waits, as os.Open
// does, but only until ctx ends; with a writer it reads what is written.
func TestOpenFIFOCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Open(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open(FIFO without writer) = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v after ctx ended", d)
	}
	// A second FIFO: the first one's abandoned open still waits, and
	// would take the writer.
	path = filepath.Join(t.TempDir(), "fifo2")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.WriteString("hello")
			w.Close()
		}
	}()
	f, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if data, err := io.ReadAll(f); string(data) != "hello" || err != nil {
		t.Fatalf("read %q, %v", data, err)
	}
}
