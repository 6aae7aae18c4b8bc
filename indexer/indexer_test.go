package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fact is what the index must say about one path of the tree.
type fact struct {
	typ    treeindex.Type
	size   int64
	sum    [32]byte
	target string
}

// truth walks dir independently of the indexer.
func truth(t *testing.T, dir string) map[string]fact {
	t.Helper()
	m := map[string]fact{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if rel == treeindex.Dir {
			return filepath.SkipDir
		}
		if strings.HasSuffix(rel, tmpSuffix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			m[rel] = fact{typ: treeindex.Directory}
		case fi.Mode()&fs.ModeSymlink != 0:
			tg, _ := os.Readlink(p)
			m[rel] = fact{typ: treeindex.Symlink, target: tg}
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = fact{typ: treeindex.File, size: int64(len(b)), sum: sha256.Sum256(b)}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mismatch compares the index of dir with the tree and checks every
// control file it names; "" when they agree.
func mismatch(t *testing.T, dir string) string {
	x, err := ReadIndex(dir)
	if err != nil {
		return err.Error()
	}
	want := truth(t, dir)
	got := map[string]fact{}
	for _, e := range x.Entries {
		f := fact{typ: e.Type, size: e.Size, target: e.Target}
		copy(f.sum[:], e.SHA256)
		got[e.Path] = f
		if e.Control != "" {
			cf, err := os.Open(filepath.Join(dir, filepath.FromSlash(e.Control)))
			if err != nil {
				return err.Error()
			}
			c, err := control.Read(cf)
			cf.Close()
			if err != nil {
				return e.Control + ": " + err.Error()
			}
			if c.Length != e.Size || (c.SHA256 != nil && !bytes.Equal(c.SHA256, e.SHA256)) {
				return e.Control + ": does not describe " + e.Path
			}
		}
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			return "missing " + p
		} else if g != w {
			return "differs: " + p
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			return "extra " + p
		}
	}
	return ""
}

func tree(t *testing.T) string {
	dir := t.TempDir()
	put(t, dir, "big.bin", randBytes(1, 300<<10))
	put(t, dir, "a/b/mid.bin", randBytes(2, 40<<10))
	put(t, dir, "a/small.txt", []byte("small\n"))
	put(t, dir, "a/empty", nil)
	put(t, dir, "a b/ü %41.txt", randBytes(3, 20<<10))
	if err := os.Symlink("../big.bin", filepath.Join(dir, "a", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestIndexIncremental(t *testing.T) {
	ctx := context.Background()
	dir := tree(t)
	var got []Change
	opts := Options{NoSync: true, OnChange: func(_ context.Context, c Change) error {
		got = append(got, c)
		return nil
	}}
	res, err := Index(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m := mismatch(t, dir); m != "" {
		t.Fatal(m)
	}
	if !res.Written || res.Generation != 1 || res.Controls != 3 || res.Files != 5 || len(got) != res.Entries || res.Entries != 10 {
		t.Fatalf("first run: %+v, %d changes", res, len(got))
	}
	x, _ := ReadIndex(dir)
	if e, _ := x.Lookup("a/small.txt"); string(e.Data) != "small\n" || e.Control != "" {
		t.Errorf("small file entry %+v", e)
	}
	if e, _ := x.Lookup("a b/ü %41.txt"); e.Control != ".zsyncpipe/a b/ü %41.txt.zsync" {
		t.Errorf("control %q", e.Control)
	}
	f, _ := os.Open(filepath.Join(dir, ".zsyncpipe", "a b", "ü %41.txt.zsync"))
	c, err := control.Read(f)
	f.Close()
	if err != nil || c.URLs[0] != "../../a%20b/%C3%BC%20%2541.txt" || c.Filename != "ü %41.txt" {
		t.Fatalf("control file: %v %+v", err, c)
	}

	// Nothing changed: nothing read, nothing written, no change.
	got = nil
	res, err = Index(ctx, dir, opts)
	if err != nil || res.Written || res.Hashed != 0 || len(got) != 0 || res.Generation != 1 {
		t.Fatalf("second run: %+v, %v, %d changes", res, err, len(got))
	}

	// One file changed, one renamed, one removed, one shrinks below the
	// small-file threshold.
	put(t, dir, "a/b/mid.bin", randBytes(4, 40<<10))
	if err := os.Rename(filepath.Join(dir, "big.bin"), filepath.Join(dir, "a", "big2.bin")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "a", "empty"))
	put(t, dir, "a b/ü %41.txt", []byte("now small"))
	got = nil
	res, err = Index(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m := mismatch(t, dir); m != "" {
		t.Fatal(m)
	}
	ops := map[string]Op{}
	for _, c := range got {
		ops[c.Path] = c.Op
		if c.Op == Renamed && c.OldPath != "big.bin" {
			t.Errorf("rename from %q", c.OldPath)
		}
	}
	want := map[string]Op{"a/b/mid.bin": Changed, "a/big2.bin": Renamed, "a/empty": Removed, "a b/ü %41.txt": Changed}
	for p, op := range want {
		if ops[p] != op {
			t.Errorf("%s: %v, want %v (all: %v)", p, ops[p], op, ops)
		}
	}
	if res.Generation != 2 || res.Hashed != 3 {
		t.Errorf("third run: %+v", res)
	}
	for _, gone := range []string{".zsyncpipe/big.bin.zsync", ".zsyncpipe/a b"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there: %v", gone, err)
		}
	}
}

// TestIndexReplaced: a file replaced by another of the same size and mtime
// (rename over it) is noticed through its inode.
func TestIndexReplaced(t *testing.T) {
	dir := tree(t)
	if _, err := Index(context.Background(), dir, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a", "b", "mid.bin")
	fi, _ := os.Stat(p)
	put(t, dir, "a/b/mid.new", randBytes(99, int(fi.Size())))
	os.Chtimes(filepath.Join(dir, "a", "b", "mid.new"), fi.ModTime(), fi.ModTime())
	if err := os.Rename(filepath.Join(dir, "a", "b", "mid.new"), p); err != nil {
		t.Fatal(err)
	}
	res, err := Index(context.Background(), dir, Options{NoSync: true})
	if err != nil || res.Hashed != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if m := mismatch(t, dir); m != "" {
		t.Fatal(m)
	}
}

func TestIndexBeside(t *testing.T) {
	dir := tree(t)
	opts := Options{NoSync: true, Beside: true, Legacy: true}
	for range 2 {
		if _, err := Index(context.Background(), dir, opts); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := ReadIndex(dir)
	if e, _ := x.Lookup("big.bin"); e.Control != "big.bin.zsync" {
		t.Fatalf("control %q", e.Control)
	}
	if _, ok := x.Lookup("big.bin.zsync"); ok {
		t.Fatal("a control file is listed as part of the tree")
	}
	if !x.Header.Legacy {
		t.Fatal("header does not say legacy")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "big.bin"))
	sum := sha256.Sum256(b)
	if e, _ := x.Lookup("big.bin"); !bytes.Equal(e.SHA256, sum[:]) {
		t.Fatal("legacy run: wrong SHA-256")
	}
}

func TestIndexRefusesNames(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "ok", []byte("x"))
	put(t, dir, "bad\nname", []byte("x"))
	_, err := Index(context.Background(), dir, Options{NoSync: true})
	if !errors.Is(err, ErrName) || !errors.Is(err, relpath.ErrUnsafe) || !strings.Contains(err.Error(), `bad\nname`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(treeindex.IndexPath))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("an index was written")
	}

	dir = t.TempDir()
	put(t, dir, "x", randBytes(1, 20<<10))
	put(t, dir, "x.zsync/y", randBytes(2, 20<<10))
	if _, err := Index(context.Background(), dir, Options{NoSync: true}); !errors.Is(err, ErrName) {
		t.Fatalf("clash: err = %v", err)
	}
}

// TestCustomWalker shows a caller's own walker feeding the pipeline and
// its own sink fed by it.
func TestCustomWalker(t *testing.T) {
	dir := tree(t)
	only := func(ctx context.Context, dir string, emit func(Item) error) error {
		return WalkDir(ctx, dir, func(it Item) error {
			if it.Path == "a" || strings.HasPrefix(it.Path, "a/") {
				return emit(it)
			}
			return nil
		})
	}
	var sunk []string
	sink := func(_ context.Context, e treeindex.Entry) error {
		sunk = append(sunk, e.Path)
		return nil
	}
	res, err := Index(context.Background(), dir, Options{NoSync: true, Walk: only, OnEntry: sink})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ReadIndex(dir)
	var paths []string
	for _, e := range x.Entries {
		paths = append(paths, e.Path)
	}
	want := []string{"a", "a/b", "a/b/mid.bin", "a/empty", "a/link", "a/small.txt"}
	if !slices.Equal(paths, want) || res.Entries != len(want) || !slices.Equal(sunk, want) {
		t.Fatalf("paths %q, sink %q", paths, sunk)
	}
}

// TestIndexChangingFile: a file that keeps changing while it is read is
// left out instead of being described wrongly.
func TestIndexSettle(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "new", randBytes(1, 30<<10))
	res, err := Index(context.Background(), dir, Options{NoSync: true, Settle: time.Hour})
	if err != nil || res.Unsettled != 1 || res.Files != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestIndexFutureMTime: a file dated in the future is indexed by a pass
// with a settle time instead of waiting forever.
func TestIndexFutureMTime(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "f", []byte("from the future"))
	future := time.Now().Add(24 * time.Hour)
	os.Chtimes(filepath.Join(dir, "f"), future, future)
	res, err := Index(context.Background(), dir, Options{NoSync: true, Settle: time.Minute})
	if err != nil || res.Files != 1 || res.Unsettled != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestIndexPublisherDirLink: a .zsyncpipe that is a symlink is refused,
// not written through.
func TestIndexPublisherDirLink(t *testing.T) {
	dir, elsewhere := tree(t), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, ".zsyncpipe")); err != nil {
		t.Fatal(err)
	}
	if _, err := Index(context.Background(), dir, Options{NoSync: true}); !errors.Is(err, ErrName) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Fatalf("wrote %d files through the link", len(ents))
	}
}

// TestWalkStaysInside: the walk never leaves the tree, even through a
// directory swapped for a symlink to outside it.
func TestWalkStaysInside(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	put(t, outside, "secret", []byte("secret"))
	put(t, dir, "d/x", []byte("x"))
	var got []string
	swapped := false
	err := WalkDir(context.Background(), dir, func(it Item) error {
		got = append(got, it.Path)
		if it.Path == "d" && !swapped {
			// Swap d for a link to outside between its Lstat and its read.
			swapped = true
			os.RemoveAll(filepath.Join(dir, "d"))
			if err := os.Symlink(outside, filepath.Join(dir, "d")); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	for _, p := range got {
		if strings.Contains(p, "secret") {
			t.Fatalf("the walk left the tree: %q (err %v)", got, err)
		}
	}
}

// TestIndexSmallZero: with every file given a control file, tiny files are
// not inlined, and a second pass reads nothing.
func TestIndexSmallZero(t *testing.T) {
	dir := tree(t)
	opts := Options{NoSync: true, Small: -1}
	if _, err := Index(context.Background(), dir, opts); err != nil {
		t.Fatal(err)
	}
	if m := mismatch(t, dir); m != "" {
		t.Fatal(m)
	}
	x, _ := ReadIndex(dir)
	if e, _ := x.Lookup("a/small.txt"); e.Data != nil || e.Control == "" {
		t.Fatalf("tiny file with --small 0: %+v", e)
	}
	res, err := Index(context.Background(), dir, opts)
	if err != nil || res.Hashed != 0 || res.Written {
		t.Fatalf("second pass: %+v %v", res, err)
	}
}
