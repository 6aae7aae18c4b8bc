package zsyncpipe

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// TestMirrorReadyOnlyListed: ready takes a verified file from the parts
// directory only when the run's listing of that directory at its start
// (staleTmps) named it: a file an earlier run left is taken, a name the
// listing did not have is not looked up at all (those were 4,700 failed
// lookups on the divergent Go pair). Where the directory could not be
// listed, every name is looked up, as before.
func TestMirrorReadyOnlyListed(t *testing.T) {
	m := newFlushRun(t, nil)
	m.idx = &treeindex.Index{}
	job := func(name string) *fileJob {
		data := []byte("content of " + name)
		sum := sha256.Sum256(data)
		j := &fileJob{e: &treeindex.Entry{Path: name, Type: treeindex.File, Size: int64(len(data)), Mode: 0o644,
			MTime: time.Unix(1_700_000_000, 0), SHA256: sum[:]}, hex: fmt.Sprintf("%x", sum), how: "copy"}
		if err := os.WriteFile(m.partPath(j)+".tmp", data, 0o644); err != nil {
			t.Fatal(err)
		}
		return j
	}
	left := job("left")
	m.staleTmps()
	if !m.partsListed {
		t.Fatal("the parts directory was not listed")
	}
	later := job("later") // written after the listing: not an earlier run's
	if !m.ready(left) || left.tmp != m.partPath(left)+".tmp" {
		t.Errorf("the file an earlier run left in the parts directory was not taken (tmp %q)", left.tmp)
	}
	if m.ready(later) {
		t.Errorf("a file the listing did not name was taken: it was looked up")
	}
	m.partsListed = false // the listing failed: every name is looked up
	if !m.ready(later) {
		t.Errorf("without a listing, the file in the parts directory was not taken")
	}
}

// TestOpenPartFresh: a partial result that the caller found missing
// (fresh) is created new and empty, without reading a state; if it is
// there after all (made since the caller looked), it is opened as
// openPart opens it: an earlier run's state is resumed.
func TestOpenPartFresh(t *testing.T) {
	dir := t.TempDir()
	data := treeData(3, 64<<10)
	f := netControl(t, data, false)
	out := filepath.Join(dir, "x")
	p, err := openPartFresh(out, f, 0o644, t.Logf, true)
	if err != nil {
		t.Fatal(err)
	}
	if p.earlier != nil || p.setAside != "" || !p.noState {
		t.Errorf("a fresh partial result: earlier %v, set aside %q, noState %v", p.earlier != nil, p.setAside, p.noState)
	}
	if fi, err := p.f.Stat(); err != nil || fi.Size() != f.Length {
		t.Errorf("a fresh partial result: %v, %v; want %d bytes", fi, err, f.Length)
	}
	// An earlier run's: blocks written and a state saved, then closed.
	if err := p.pt.WriteBlock(stages.Block{Index: 0, Data: data[:f.Blocksize]}); err != nil {
		t.Fatal(err)
	}
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	p.close()
	// A second "fresh" open finds it there (made since the caller
	// listed the directory) and resumes it.
	q, err := openPartFresh(out, f, 0o644, t.Logf, true)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if q.earlier == nil || !q.earlier.done(0) {
		t.Errorf("a partial result made since the listing was not resumed from its state")
	}
	// Locked: a third open fails as openPart does.
	if _, err := openPartFresh(out, f, 0o644, t.Logf, true); !errors.Is(err, ErrBusy) {
		t.Errorf("a second open of a locked partial result: %v, want ErrBusy", err)
	}
}

// TestMirrorWritesOverPart: a file the scan opened a partial result for
// and that is then fetched whole is written over that file from its start
// (not emptied first), and the result is the content alone, also when
// the partial result is longer than the content (it is cut to it).
func TestMirrorWritesOverPart(t *testing.T) {
	m := newFlushRun(t, nil)
	data := treeData(5, 40<<10)
	f := netControl(t, data, false)
	sum := sha256.Sum256(data)
	for _, tc := range []struct {
		name string
		size int64 // the entry's length, against the partial result's
	}{{"same", int64(len(data))}, {"shorter", int64(len(data)) - 1}} {
		t.Run(tc.name, func(t *testing.T) {
			j := &fileJob{e: &treeindex.Entry{Path: "a/" + tc.name, Type: treeindex.File, Size: tc.size, Mode: 0o644,
				MTime: time.Unix(1_700_000_000, 0), SHA256: sum[:]}, hex: fmt.Sprintf("%x-%s", sum, tc.name), how: "sync"}
			p, err := openPartFresh(m.partPath(j), f, 0o644, t.Logf, true)
			if err != nil {
				t.Fatal(err)
			}
			// What the scan found: the second half, at its place; the rest
			// reads as zeros.
			half := int64(len(data)) / 2
			if err := p.pt.WriteBlock(stages.Block{Index: half / int64(f.Blocksize), Data: data[half:][:f.Blocksize]}); err != nil {
				t.Fatal(err)
			}
			j.part = p
			content := data[:tc.size]
			s := sha256.Sum256(content)
			j.e.SHA256 = s[:]
			if err := m.writeVerified(j, bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
			if j.tmp != p.path {
				t.Errorf("written to %s, not into the partial result %s", j.tmp, p.path)
			}
			if got, err := os.ReadFile(j.tmp); err != nil || !bytes.Equal(got, content) {
				t.Errorf("the file holds %d bytes (%v), not the content", len(got), err)
			}
		})
	}
}
