package osfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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
