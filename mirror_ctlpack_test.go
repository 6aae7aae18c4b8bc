package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// ctlPackTestName names the control pack the tests write.
const ctlPackTestName = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"

// packControls puts the control file of every entry of root's index that
// has one into one control pack, as the publisher does (docs/trees.md,
// "Packs"), and rewrites the index; edit, if set, may change each record
// before it is written. It returns the index.
func packControls(t testing.TB, root string, edit func(e *treeindex.Entry, rec []byte) []byte) *treeindex.Index {
	t.Helper()
	idx := readTestIndex(t, root)
	var pack bytes.Buffer
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if e.Control == "" {
			continue
		}
		rec, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(e.Control)))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			rec = edit(e, rec)
		}
		e.ControlPack = &treeindex.PackRef{Name: ctlPackTestName, Offset: int64(pack.Len()), Length: int64(len(rec)), Encoding: treeindex.PackRaw}
		pack.Write(rec)
	}
	publishPack(t, root, ctlPackTestName, pack.Bytes(), idx)
	return idx
}

// contentRef and controlRef select an entry's pack references.
func contentRef(e *treeindex.Entry) **treeindex.PackRef { return &e.Pack }
func controlRef(e *treeindex.Entry) **treeindex.PackRef { return &e.ControlPack }

// recordBeyondEnd moves the record (ref) of the entry whose path ends in
// suffix far beyond the end of its pack, in a new generation of pub's
// index idx.
func recordBeyondEnd(t testing.TB, pub string, idx *treeindex.Index, suffix string, ref func(*treeindex.Entry) **treeindex.PackRef) {
	t.Helper()
	for i := range idx.Entries {
		if e := &idx.Entries[i]; strings.HasSuffix(e.Path, suffix) {
			(*ref(e)).Offset = 1 << 40
		}
	}
	idx.Header.Generation++
	writeIndex(t, pub, idx)
}

// recordOverlapping makes the record (ref) of the entry whose path ends in
// suffix overlap the record of the entry before it, in a new generation
// of pub's index idx.
func recordOverlapping(t testing.TB, pub string, idx *treeindex.Index, suffix string, ref func(*treeindex.Entry) **treeindex.PackRef) {
	t.Helper()
	var prev *treeindex.Entry
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if strings.HasSuffix(e.Path, suffix) && prev != nil {
			p := **ref(prev)
			p.Offset++ // overlaps the record of prev, same length
			*ref(e) = &p
		}
		if *ref(e) != nil {
			prev = e
		}
	}
	idx.Header.Generation++
	writeIndex(t, pub, idx)
}

// pathCounter counts the requests of a test server by kind.
type pathCounter struct {
	mu       sync.Mutex
	controls int // control files by their paths
	ctlPack  int // the control pack
	all      int
}

// serveCounted serves root over HTTP on loopback, counting requests in c.
func serveCounted(t testing.TB, root string, c *pathCounter) string {
	t.Helper()
	fsrv := http.FileServer(http.Dir(root))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.all++
		switch {
		case strings.HasSuffix(r.URL.Path, treeindex.ControlSuffix):
			c.controls++
		case strings.HasSuffix(r.URL.Path, ctlPackTestName+treeindex.PackSuffix):
			c.ctlPack++
		}
		c.mu.Unlock()
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// ctlPackTrees writes n changed files with control files: an old version
// into dst, a new one into pub, published.
func ctlPackTrees(t testing.TB, pub, dst string, n int) {
	t.Helper()
	for i := range n {
		rel := fmt.Sprintf("d%d/f%03d.bin", i%4, i)
		old := treeData(uint64(100+i), 24<<10)
		treeFile(t, dst, rel, old, 0o644)
		now := append([]byte{}, old...)
		copy(now[8<<10:], fmt.Sprintf("file %d changed here", i))
		treeFile(t, pub, rel, now, 0o644)
	}
	publishTree(t, pub, 1)
}

// TestMirrorControlsFromPacks: the control files of the files to rebuild
// come from the control pack, many per request, and none by its path.
func TestMirrorControlsFromPacks(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	ctlPackTrees(t, pub, dst, 60)
	packControls(t, pub, nil)
	var c pathCounter
	var notes strings.Builder
	opts := mirrorOpts(serveCounted(t, pub, &c), dst)
	opts.Logf = func(f string, a ...any) { fmt.Fprintf(&notes, f+"\n", a...) }
	sum, err := Mirror(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Updated != 60 || sum.Reused < 60*20<<10 {
		t.Errorf("%d updated, %d bytes reused; want 60 rebuilt from their old versions", sum.Updated, sum.Reused)
	}
	if c.controls != 0 || c.ctlPack == 0 || c.ctlPack > 4 {
		t.Errorf("%d control files by path, %d requests of the control pack; want 0 and a few\n%s", c.controls, c.ctlPack, notes.String())
	}
}

// TestMirrorHostileControlPacks: control records that do not parse,
// describe another file, lie beyond the pack's end or overlap, and a
// control pack that is missing, never stop a mirror: each such control
// file is fetched by its path, and the tree is the published one.
func TestMirrorHostileControlPacks(t *testing.T) {
	const n = 12
	cases := []struct {
		name  string
		bad   int // control files that must come by path
		edit  func(e *treeindex.Entry, rec []byte) []byte
		after func(t *testing.T, pub string, idx *treeindex.Index)
	}{
		{name: "good", bad: 0},
		{name: "garbage", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f003.bin") {
				return bytes.Repeat([]byte("not a control file\n"), 10)
			}
			return rec
		}},
		{name: "cut short", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f004.bin") {
				return rec[:len(rec)/2]
			}
			return rec
		}},
		{name: "another file's", bad: 2, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			var a, b *treeindex.Entry
			for i := range idx.Entries {
				switch e := &idx.Entries[i]; {
				case strings.HasSuffix(e.Path, "f005.bin"):
					a = e
				case strings.HasSuffix(e.Path, "f006.bin"):
					b = e
				}
			}
			a.ControlPack, b.ControlPack = b.ControlPack, a.ControlPack
			idx.Header.Generation++
			writeIndex(t, pub, idx)
		}},
		{name: "missing pack", bad: n, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			os.Remove(filepath.Join(pub, filepath.FromSlash(treeindex.PackPath(ctlPackTestName))))
		}},
		{name: "beyond the end", bad: 1, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			recordBeyondEnd(t, pub, idx, "f007.bin", controlRef)
		}},
		{name: "overlapping", bad: 1, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			recordOverlapping(t, pub, idx, "f008.bin", controlRef)
		}},
		{name: "unknown encoding", bad: 1, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			for i := range idx.Entries {
				if e := &idx.Entries[i]; strings.HasSuffix(e.Path, "f009.bin") {
					e.ControlPack.Encoding = "zstd"
				}
			}
			idx.Header.Generation++
			writeIndex(t, pub, idx)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub, dst := t.TempDir(), t.TempDir()
			ctlPackTrees(t, pub, dst, n)
			idx := packControls(t, pub, c.edit)
			if c.after != nil {
				c.after(t, pub, idx)
			}
			var cnt pathCounter
			var notes strings.Builder
			opts := mirrorOpts(serveCounted(t, pub, &cnt), dst)
			opts.Logf = func(f string, a ...any) { fmt.Fprintf(&notes, f+"\n", a...) }
			sum, err := Mirror(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			if cnt.controls != c.bad || sum.Updated != n {
				t.Errorf("%d control files by path, %d updated; want %d and %d\n%s", cnt.controls, sum.Updated, c.bad, n, notes.String())
			}
			if sum.Reused < n*20<<10 {
				t.Errorf("%d bytes reused: the files were not rebuilt from their old versions", sum.Reused)
			}
		})
	}
}
