package osfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestReadAt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := []byte("0123456789")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if n, err := ReadAt(p, b, 3); n != 4 || err != nil || string(b) != "3456" {
		t.Errorf("ReadAt(3) = %d, %v, %q; want 4, nil, \"3456\"", n, err, b)
	}
	if n, err := ReadAt(p, b, 8); n != 2 || err != io.EOF || string(b[:n]) != "89" {
		t.Errorf("ReadAt(8) = %d, %v, %q; want 2, io.EOF, \"89\"", n, err, b[:n])
	}
	if _, err := ReadAt(p, b, -1); err == nil {
		t.Error("ReadAt(-1) did not fail")
	}
	if _, err := ReadAt(filepath.Join(t.TempDir(), "none"), b, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadAt of a missing file: %v; want fs.ErrNotExist", err)
	}
}

// TestReaders: reads through Readers return what ReadAt returns, keep at
// most n files open between reads (the least recently used closed first),
// read a file replaced at its path as it was when opened, and fail like
// ReadAt for a missing file; reads from many goroutines at once agree.
func TestReaders(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 10 {
		p := filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d: 0123456789", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	r := NewReaders(3)
	b := make([]byte, 4)
	for i, p := range paths {
		if n, err := r.ReadAt(p, b, 8); n != 4 || err != nil || string(b) != "0123" {
			t.Errorf("%s: %d, %v, %q", p, n, err, b)
		}
		if got := len(r.open); got != min(i+1, 3) {
			t.Errorf("after %d files: %d open, want %d", i+1, got, min(i+1, 3))
		}
	}
	if n, err := r.ReadAt(paths[9], b, 16); n != 2 || err != io.EOF || string(b[:n]) != "89" {
		t.Errorf("at the end: %d, %v, %q; want 2, io.EOF, \"89\"", n, err, b[:n])
	}
	// Most recently used last: f7, f8, f9; f8 read again moves to the end.
	r.ReadAt(paths[8], b, 0)
	var open []string
	for _, rf := range r.open {
		open = append(open, filepath.Base(rf.path))
	}
	if fmt.Sprint(open) != "[f7 f9 f8]" {
		t.Errorf("open files %v, want [f7 f9 f8]", open)
	}
	// Replaced while open: the open file is read.
	if err := os.WriteFile(paths[8]+".new", []byte("replaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(paths[8]+".new", paths[8]); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ReadAt(paths[8], b, 0); n != 4 || err != nil || string(b) != "file" {
		t.Errorf("replaced while open: %d, %v, %q; want the old content", n, err, b)
	}
	if _, err := r.ReadAt(filepath.Join(dir, "none"), b, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v; want fs.ErrNotExist", err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			b := make([]byte, 2)
			for k := range 200 {
				i := (g + k) % 8 // f0 to f7, unchanged
				if n, err := r.ReadAt(paths[i], b, 5); n != 2 || err != nil || string(b) != fmt.Sprint(i)+":" {
					t.Errorf("concurrent read of %s: %d, %v, %q", paths[i], n, err, b)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(r.open) > 3 {
		t.Errorf("%d files open after the reads, want at most 3", len(r.open))
	}
	r.Close()
	if len(r.open) != 0 {
		t.Errorf("%d files open after Close", len(r.open))
	}
}
