package treeindex

import (
	"bytes"
	"errors"
	"testing"
)

// ReadAll calls Each with every entry, in order, as it reads them; an
// index that turns out bad is still refused after Each saw its first
// entries.
func TestReadAllEach(t *testing.T) {
	var buf bytes.Buffer
	x := &Index{Entries: sample()}
	if err := x.Write(&buf, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	y, err := ReadAll(bytes.NewReader(buf.Bytes()), ReaderOptions{Each: func(e *Entry) { seen = append(seen, e.Path) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(y.Entries) {
		t.Fatalf("Each saw %d entries, the index has %d", len(seen), len(y.Entries))
	}
	for i := range seen {
		if seen[i] != y.Entries[i].Path {
			t.Errorf("Each saw %q at %d, the index has %q", seen[i], i, y.Entries[i].Path)
		}
	}
	seen = nil
	bad := rawIndex([]string{`{"path":"d","type":"dir","mode":493}`, fileLine("d/f")}, "0000")
	_, err = ReadAll(bytes.NewReader([]byte(bad)), ReaderOptions{Each: func(e *Entry) { seen = append(seen, e.Path) }})
	if !errors.Is(err, ErrFormat) || len(seen) != 2 {
		t.Errorf("bad trailer: %v after %v; want ErrFormat after both entries", err, seen)
	}
}
