//go:build unix

package indexer

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenSeen: a file is opened by its path only while the path leads to
// the file the walk saw; a directory swapped for a symlink to outside the
// tree, or a file replaced by another, is refused.
func TestOpenSeen(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	put(t, dir, "a/f", []byte("inside"))
	put(t, outside, "f", []byte("outside"))
	full := filepath.Join(dir, "a", "f")
	seen, err := os.Lstat(full)
	if err != nil {
		t.Fatal(err)
	}
	f := openSeen(full, seen)
	if f == nil {
		t.Fatal("the file the walk saw was not opened")
	}
	f.Close()
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if f := openSeen(full, seen); f != nil {
		f.Close()
		t.Fatal("opened a file outside the tree through a swapped directory")
	}
	// The last element a symlink to the very file: refused too.
	os.Remove(filepath.Join(dir, "a"))
	os.Mkdir(filepath.Join(dir, "a"), 0o755)
	if err := os.Symlink(filepath.Join(dir, "b", "f"), full); err != nil {
		t.Fatal(err)
	}
	if f := openSeen(full, seen); f != nil {
		f.Close()
		t.Fatal("followed a symlink in the last element")
	}
	// A FIFO in its place does not block.
	os.Remove(full)
	if err := mkfifo(full); err != nil {
		t.Fatal(err)
	}
	if f := openSeen(full, seen); f != nil {
		f.Close()
		t.Fatal("opened a FIFO")
	}
}

func mkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }
