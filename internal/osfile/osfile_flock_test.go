//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package osfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

// TestReadRegular: ReadRegular reads a regular file whole (empty, small,
// larger than its first buffer), refuses a FIFO at once and a directory,
// and reports a missing file as fs.ErrNotExist.
func TestReadRegular(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []int{0, 1, 511, 512, 513, 100 << 10} {
		want := bytes.Repeat([]byte{'x'}, n)
		p := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadRegular(ctx, p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadRegular(%d bytes) = %d bytes, %v", n, len(got), err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadRegular(ctx, fifo)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadRegular(FIFO) = %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("ReadRegular(FIFO) waited for a writer")
	}
	if _, err := ReadRegular(ctx, dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadRegular(directory) = %v, want ErrNotRegular", err)
	}
	if _, err := ReadRegular(ctx, filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadRegular(missing) = %v, want fs.ErrNotExist", err)
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
