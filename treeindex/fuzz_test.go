package treeindex

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/relpath"
)

// FuzzReader: whatever the input, a Reader never panics, and every entry
// it returns before io.EOF has a safe path below a listed directory, in
// strictly increasing order; and a complete index round-trips through a
// Writer to the same content hash.
func FuzzReader(f *testing.F) {
	f.Add([]byte(rawIndex([]string{`{"path":"d","type":"dir","mode":493}`, fileLine("d/f")}, "")))
	f.Add([]byte(rawIndex([]string{fileLine("../x")}, "")))
	f.Add([]byte(rawIndex([]string{`{"path":"l","type":"symlink","target":"/"}`, fileLine("l/x")}, "")))
	var buf bytes.Buffer
	(&Index{Entries: sample()}).Write(&buf, WriterOptions{Uncompressed: true})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), ReaderOptions{MaxEntries: 1000})
		if err != nil {
			return
		}
		var es []Entry
		for {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
			if relpath.Check(e.Path) != nil {
				t.Fatalf("unsafe path %q accepted", e.Path)
			}
			if n := len(es); n > 0 && Compare(es[n-1].Path, e.Path) >= 0 {
				t.Fatalf("%q after %q", e.Path, es[n-1].Path)
			}
			if i := strings.LastIndexByte(e.Path, '/'); i >= 0 {
				parent := e.Path[:i]
				found := false
				for _, p := range es {
					found = found || (p.Path == parent && p.Type == Directory)
				}
				if !found {
					t.Fatalf("%q without its directory", e.Path)
				}
			}
			es = append(es, e)
		}
		var out bytes.Buffer
		x := &Index{Header: r.Header(), Entries: es}
		if err := x.Write(&out, WriterOptions{}); err != nil {
			t.Fatalf("a read index does not write: %v", err)
		}
		if !bytes.Equal(x.Sum, r.Sum()) && len(es) > 0 {
			// Same entries, possibly other JSON spelling: the re-read must
			// agree with what was written.
			y, err := ReadAll(&out, ReaderOptions{})
			if err != nil || !bytes.Equal(y.Sum, x.Sum) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
