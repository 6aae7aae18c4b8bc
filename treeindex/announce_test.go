package treeindex

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

// announced returns rawIndex's index of lines with a header that announces
// count entries.
func announced(lines []string, count int64) string {
	s := rawIndex(lines, "")
	return strings.Replace(s, `"generation":1}`, fmt.Sprintf(`"generation":1,"entries":%d}`, count), 1)
}

// TestAnnouncedCount shows that Index.Write announces its entries in the
// header, that ReadAll then holds them in one slice from the start (it
// allocates about a slice of entries less than for the same index without
// the announcement, whose entries it gathers in chunks and copies), and
// that an index whose header announces another count than it has is
// refused.
func TestAnnouncedCount(t *testing.T) {
	const n = 5000
	x := &Index{Header: Header{Generation: 1}}
	e := file("", "")
	for i := range n {
		e.Path = fmt.Sprintf("f%05d", i)
		x.Entries = append(x.Entries, e)
	}
	var with, without bytes.Buffer
	if err := x.Write(&with, WriterOptions{Uncompressed: true}); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(&without, x.Header, WriterOptions{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range x.Entries {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	allocated := func(b []byte) (*Index, uint64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		y, err := ReadAll(bytes.NewReader(b), ReaderOptions{})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return y, after.TotalAlloc - before.TotalAlloc
	}
	y, a := allocated(with.Bytes())
	z, b := allocated(without.Bytes())
	if y.Header.Entries != n || z.Header.Entries != 0 || len(y.Entries) != n || len(z.Entries) != n {
		t.Fatalf("announced %d and %d, read %d and %d entries; want %d, 0, %d, %d", y.Header.Entries, z.Header.Entries, len(y.Entries), len(z.Entries), n, n, n)
	}
	if slice := uint64(n) * uint64(unsafe.Sizeof(Entry{})); a+slice*3/4 > b {
		t.Errorf("ReadAll allocated %d bytes with the count announced, %d without: want a slice of entries (%d bytes) less", a, b, slice)
	}

	good := []string{`{"path":"d","type":"dir","mode":493}`, fileLine("d/f")}
	if g, err := ReadAll(strings.NewReader(announced(good, 2)), ReaderOptions{}); err != nil || len(g.Entries) != 2 {
		t.Fatalf("an index announcing its 2 entries: %v, %+v", err, g)
	}
	for name, idx := range map[string]string{
		"fewer":    announced(good, 3),
		"more":     announced(good, 1),
		"negative": announced(good, -1),
		"too many": announced(good, DefaultMaxEntries+1),
		"huge":     announced(good, 1<<62),
	} {
		if _, err := ReadAll(strings.NewReader(idx), ReaderOptions{}); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
	if _, err := ReadAll(strings.NewReader(announced(good, 3)), ReaderOptions{MaxEntries: 2}); !errors.Is(err, ErrFormat) {
		t.Errorf("announcing more than MaxEntries: err = %v, want ErrFormat", err)
	}
}

// TestAnnouncedBeyondRoom reads an index announcing more entries than
// ReadAll makes room for on a header's word: the rest go to chunks, and
// the result is whole and in order.
func TestAnnouncedBeyondRoom(t *testing.T) {
	n := maxAnnounced + 7000
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Entries: int64(n)}, WriterOptions{Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	e := file("", "")
	for i := range n {
		e.Path = fmt.Sprintf("f%07d", i)
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	x, err := ReadAll(&buf, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Entries) != n || cap(x.Entries) != n {
		t.Fatalf("%d entries (capacity %d), want %d", len(x.Entries), cap(x.Entries), n)
	}
	for i := range x.Entries {
		if want := fmt.Sprintf("f%07d", i); x.Entries[i].Path != want {
			t.Fatalf("entry %d is %q, want %q", i, x.Entries[i].Path, want)
		}
	}
}

// TestWriterChecksAnnounced shows that a Writer refuses to close an index
// whose header announced another number of entries than were added.
func TestWriterChecksAnnounced(t *testing.T) {
	for _, added := range []int{1, 3} {
		w, err := NewWriter(io.Discard, Header{Entries: 2}, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range added {
			if err := w.Add(file(fmt.Sprintf("f%d", i), "")); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err == nil {
			t.Errorf("announced 2 entries, added %d: Close succeeded", added)
		}
	}
	if _, err := NewWriter(io.Discard, Header{Entries: -1}, WriterOptions{}); err == nil {
		t.Error("NewWriter accepted a header announcing -1 entries")
	}
}
