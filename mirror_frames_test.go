package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/frames"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// textData is compressible content: lines of records.
func textData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "record %06d: temperature %d, station %s\n", b.Len(), r.IntN(400), []string{"north", "south", "east", "west"}[r.IntN(4)])
	}
	return b.Bytes()[:n]
}

// frameTree writes the compressed frames of every file of root's index
// that has a control file, as the publisher does, and names them in the
// index; edit, if set, may change a file of frames before it is written.
func frameTree(t *testing.T, root string, edit func(rel string, stored []byte) []byte) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(treeindex.IndexPath)))
	if err != nil {
		t.Fatal(err)
	}
	x, err := treeindex.ReadAll(f, treeindex.ReaderOptions{})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range x.Entries {
		e := &x.Entries[i]
		if e.Control == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w := frames.NewWriter(&buf, 0)
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		l := w.Layout()
		stored := buf.Bytes()
		if edit != nil {
			stored = edit(e.Path, stored)
		}
		name := fmt.Sprintf("%016x", i+1)
		p := filepath.Join(root, filepath.FromSlash(treeindex.FramesPath(name)))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, stored, 0o644); err != nil {
			t.Fatal(err)
		}
		e.Frames = &treeindex.Frames{Name: name, Encoding: l.Encoding, FrameSize: l.FrameSize, Lengths: l.Lengths}
	}
	writeIndex(t, root, x)
}

// framesTrees writes an old tree into dst and a new one into pub,
// published with frames: compressible files changed in every block of
// their first half, so that their frames are shorter than the blocks.
func framesTrees(t *testing.T, dst, pub string, edit func(string, []byte) []byte) {
	for i := range 3 {
		rel := fmt.Sprintf("data/f%d.txt", i)
		old := textData(uint64(i), 400<<10)
		treeFile(t, dst, rel, old, 0o644)
		nw := bytes.Clone(old)
		for p := 100; p < len(nw)/2; p += 1500 {
			nw[p] = '#'
		}
		treeFile(t, pub, rel, nw, 0o644)
	}
	publishTree(t, pub, 1)
	frameTree(t, pub, edit)
}

// mirrorFramesPair mirrors the trees of framesTrees with and without
// frames, each from its own copy (first: into an empty DIR), and returns
// both summaries. A dry run before each must estimate what frames save
// within a quarter.
func mirrorFramesPair(t *testing.T, first bool) (with, without *MirrorSummary) {
	var got, dry [2]*MirrorSummary
	for k, noFrames := range []bool{false, true} {
		pub, dst := t.TempDir(), t.TempDir()
		old := dst
		if first {
			old = t.TempDir()
		}
		framesTrees(t, old, pub, nil)
		url, _ := serveTree(t, pub)
		o := mirrorOpts(url, dst)
		o.NoFrames = noFrames
		o.DryRun = true
		var err error
		if dry[k], err = Mirror(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		o.DryRun = false
		sum, err := Mirror(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		compareTrees(t, pub, dst, false)
		got[k] = sum
	}
	saved := got[1].Downloaded - got[0].Downloaded
	if est := dry[0].FramesSaved; est*4 < saved*3 || est*4 > saved*5 || dry[1].FramesSaved != 0 {
		t.Errorf("first %v: dry runs estimate %d and %d bytes saved by frames; they saved %d", first, est, dry[1].FramesSaved, saved)
	}
	return got[0], got[1]
}

// TestMirrorFrames: a rebuilt file takes compressed frames for the part
// where they are shorter than its missing blocks, and the blocks as they
// are elsewhere: the same tree for fewer bytes than without frames. A
// first copy fetches each file whole as its frames.
func TestMirrorFrames(t *testing.T) {
	with, without := mirrorFramesPair(t, false)
	// Each file: 200 KB changed, 4 frames of 64 KiB; its second half
	// is found.
	if with.Frames < 9 || with.FramesDecoded < 3*180<<10 || without.Frames != 0 {
		t.Errorf("frames: %d (%d bytes) with, %d without; want about 4 per file", with.Frames, with.FramesDecoded, without.Frames)
	}
	if with.Fetched != without.Fetched || with.Reused != without.Reused {
		t.Errorf("fetched %d, reused %d with frames; %d, %d without", with.Fetched, with.Reused, without.Fetched, without.Reused)
	}
	if with.Downloaded*2 > without.Downloaded {
		t.Errorf("received %d bytes with frames, %d without; want less than half", with.Downloaded, without.Downloaded)
	}

	with, without = mirrorFramesPair(t, true)
	if with.Frames != 3*7 || with.FramesDecoded != 3*400<<10 || with.Fetched != without.Fetched {
		t.Errorf("first copy: %d frames (%d bytes), fetched %d; want 21 frames of every byte, and %d", with.Frames, with.FramesDecoded, with.Fetched, without.Fetched)
	}
	if with.Downloaded*2 > without.Downloaded {
		t.Errorf("first copy: received %d bytes with frames, %d without; want less than half", with.Downloaded, without.Downloaded)
	}
}

// TestMirrorHostileFrames: frames that are garbled, cut short, or gone
// never put a wrong byte in Dir: the blocks come from the file itself.
func TestMirrorHostileFrames(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(rel string, stored []byte) []byte
	}{
		{"garbled", func(rel string, b []byte) []byte {
			if rel == "data/f1.txt" {
				for i := range b[:len(b)/2] {
					b[i] ^= 0x21
				}
			}
			return b
		}},
		{"other content", func(rel string, b []byte) []byte {
			if rel != "data/f2.txt" {
				return b
			}
			// Frames that decode, but to other data.
			var buf bytes.Buffer
			w := frames.NewWriter(&buf, 0)
			w.Write(bytes.ToUpper(textData(2, 400<<10)))
			w.Close()
			return buf.Bytes()
		}},
		{"short", func(rel string, b []byte) []byte { return b[:len(b)/3] }},
		{"gone", func(rel string, b []byte) []byte { return nil }},
	} {
		// Rebuilt from an old version, and fetched whole by a first copy.
		for _, first := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/first=%v", c.name, first), func(t *testing.T) {
				pub, dst, old := t.TempDir(), t.TempDir(), t.TempDir()
				if !first {
					old = dst
				}
				framesTrees(t, old, pub, c.edit)
				if c.name == "gone" {
					os.RemoveAll(filepath.Join(pub, filepath.FromSlash(treeindex.FramesDir)))
				}
				url, _ := serveTree(t, pub)
				var log strings.Builder
				o := mirrorOpts(url, dst)
				o.Logf = func(format string, args ...any) { fmt.Fprintf(&log, format+"\n", args...) }
				if _, err := Mirror(context.Background(), o); err != nil {
					t.Fatal(err)
				}
				compareTrees(t, pub, dst, false)
				note := "its blocks came as they are"
				if first {
					note = "fetching it as it is"
				}
				if !strings.Contains(log.String(), note) {
					t.Errorf("no note of the frames that failed:\n%s", log.String())
				}
			})
		}
	}
}

// TestMirrorFramesLocal: frames are read through any transport, here a
// published tree in a local directory.
func TestMirrorFramesLocal(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	framesTrees(t, dst, pub, nil)
	o := mirrorOpts(pub, dst)
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Frames < 9 {
		t.Errorf("%d frames read from a local tree, want about 4 per file", sum.Frames)
	}
}
