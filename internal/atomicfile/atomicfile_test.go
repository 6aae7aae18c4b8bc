package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A failing writer leaves the old file and no temporary file.
	boom := errors.New("boom")
	if _, err := Write(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	}); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if got := content(t, path); got != "old" {
		t.Errorf("file changed to %q", got)
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("files left: %q", n)
	}
	n, err := Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write([]byte("new content"))
		return err
	})
	if err != nil || n != 11 || content(t, path) != "new content" {
		t.Errorf("n=%d err=%v content %q", n, err, content(t, path))
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v; want 0644", fi.Mode(), err)
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("files left: %q", n)
	}
	if err := WriteBytes(path, 0o600, []byte("bytes")); err != nil || content(t, path) != "bytes" {
		t.Errorf("WriteBytes: %v, content %q", err, content(t, path))
	}
	// A missing directory is an error.
	if _, err := Write(filepath.Join(dir, "no", "x"), 0o644, func(io.Writer) error { return nil }); err == nil {
		t.Error("no error for a missing directory")
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a[1]*.state")
	for _, name := range []string{".a[1]*.state.123.tmp", ".a[1]*.state.9.tmp", ".other.1.tmp", "a[1]*.state"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(path)
	got := names(t, dir)
	if len(got) != 2 || got[0] != ".other.1.tmp" || got[1] != "a[1]*.state" {
		t.Fatalf("left %q", got)
	}
}

func TestWriteOptions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	n, err := WriteOptions(p, Options{Suffix: ".x", NoSync: true}, func(w io.Writer) error {
		_, err := io.WriteString(w, "new!")
		return err
	})
	if err != nil || n != 4 {
		t.Fatalf("WriteOptions = %d, %v", n, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new!" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	boom := errors.New("boom")
	if _, err := WriteOptions(p, Options{Suffix: ".x"}, func(w io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left %d files", len(ents))
	}
}
