package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteDurable checks that the disk floor writes exactly the source's
// bytes, for sizes around its write size, and replaces a longer file.
func TestWriteDurable(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i, size := range []int64{0, 1, 4095, diskFloorChunk - 1, diskFloorChunk, 2*diskFloorChunk + 12345, diskFloorEvery + 5} {
		method := DiskMethods()[i%len(DiskMethods())]
		src := make([]byte, size)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		out := filepath.Join(dir, "out")
		if err := os.WriteFile(out, bytes.Repeat([]byte{7}, 3*diskFloorChunk), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteDurable(context.Background(), out, bytes.NewReader(src), size, method); err != nil {
			t.Fatalf("size %d, %s: %v", size, method, err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("size %d, %s: wrote %d bytes that differ from the source", size, method, len(got))
		}
	}
}

// TestWriteDurableErrors: a source shorter than size, a cancelled context,
// a directory that does not exist and an unknown method are errors, not a
// short file reported as done.
func TestWriteDurableErrors(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := WriteDurable(context.Background(), out, bytes.NewReader(make([]byte, 100)), 200, DiskHints); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short source: %v, want io.ErrUnexpectedEOF", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteDurable(ctx, out, bytes.NewReader(make([]byte, 100)), 100, DiskFlushes); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
	if err := WriteDurable(context.Background(), filepath.Join(dir, "no", "out"), bytes.NewReader(nil), 0, DiskPlain); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing directory: %v, want os.ErrNotExist", err)
	}
	if err := WriteDurable(context.Background(), out, bytes.NewReader(nil), 0, "dd"); !errors.Is(err, ErrOptions) {
		t.Errorf("unknown method: %v, want ErrOptions", err)
	}
}

// TestChildDisk runs the disk floor as bench/realpair.sh does, in a child
// process: it succeeds, prints its duration and leaves no file behind.
func TestChildDisk(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, bytes.Repeat([]byte("floor"), 300_000), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, m := range DiskMethods() {
		b, err := exec.Command(os.Args[0], ChildCommand, "disk", "-method", string(m), "-o", out, src).Output()
		if err != nil {
			t.Fatalf("child, %s: %v", m, err)
		}
		if !strings.Contains(string(b), `"duration":`) || strings.Contains(string(b), `"duration":0,`) {
			t.Errorf("child, %s, printed %q, want a positive duration", m, b)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the floor's output is left behind: %v", err)
		}
	}
	if err := exec.Command(os.Args[0], ChildCommand, "disk", src).Run(); err == nil {
		t.Error("disk without -o succeeded")
	}
	if err := exec.Command(os.Args[0], ChildCommand, "disk", "-method", "dd", "-o", out, src).Run(); err == nil {
		t.Error("disk with an unknown method succeeded")
	}
}
