package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// hadPhase reports whether the run had the phase name.
func hadPhase(sum *MirrorSummary, name string) bool {
	for _, p := range sum.Phases {
		if p.Name == name {
			return true
		}
	}
	return false
}

// Without a state file (a tree copied by hand), local files are recognised
// by their hash: every file of the right size is read, a same-size edit is
// found, a file moved in the new tree is copied, unchanged files get the
// index's mode and mtime; with the state, nothing is read again (no "hash"
// phase) until the state is gone.
func TestMirrorHashesWithoutState(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	files := smallTree(300, 0)
	makeTree(t, pub, files, nil)
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)

	local := map[string][]byte{}
	for rel, data := range files {
		local[rel] = data
	}
	edited := "d03/e3/f00003.txt"
	local[edited] = bytes.Clone(files[edited])
	local[edited][10] ^= 0xff // same size, other content
	moved := "d05/e0/f00005.txt"
	delete(local, moved)
	local["elsewhere/renamed.txt"] = files[moved]
	makeTree(t, dst, local, nil)
	// Unchanged files with another mode or mtime get the index's, and
	// the state records them (the second run hashes nothing).
	os.Chmod(filepath.Join(dst, "d01/e1/f00001.txt"), 0o600)
	os.Chtimes(filepath.Join(dst, "d02/e2/f00002.txt"), time.Unix(1e9, 0), time.Unix(1e9, 0))
	os.Chmod(filepath.Join(dst, "d04/e4/f00004.txt"), 0o755)
	os.Chtimes(filepath.Join(dst, "d04/e4/f00004.txt"), time.Unix(2e9, 0), time.Unix(2e9, 0))

	var lines []string
	o := mirrorOpts(url, dst)
	o.Delete = true
	o.Logf = func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	o.DryRun = true
	if _, err := Mirror(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "new "+moved+" (copy)") {
		t.Errorf("the moved file is not copied from its new local name:\n%s", strings.Join(lines, "\n"))
	}
	o.DryRun = false
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Updated != 1 || sum.New != 1 || sum.Unchanged != len(files)-2 || sum.Deleted != 1 || !hadPhase(sum, "hash") {
		t.Errorf("first run %+v: want %s updated, %s new (copied), the %d others unchanged by their hashes", sum, edited, moved, len(files)-2)
	}

	// The state vouches for every file now: nothing is hashed.
	o.Recheck = true
	again, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Unchanged != len(files) || again.Updated+again.New != 0 || hadPhase(again, "hash") {
		t.Errorf("run with the state: %+v, phases %v; want all %d unchanged, none hashed", again, again.Phases, len(files))
	}

	// Without it, every file is hashed again, and found unchanged.
	if err := os.Remove(filepath.Join(dst, MirrorStateDir, "state.json")); err != nil {
		t.Fatal(err)
	}
	third, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if third.Unchanged != len(files) || third.Updated+third.New != 0 || !hadPhase(third, "hash") {
		t.Errorf("run without the state: %+v; want all %d unchanged, by their hashes", third, len(files))
	}
}

// hashFile reads a file whole and whatever the buffer size; a file whose
// length is not what fstat said is an error, not a hash.
func TestHashFile(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 4095, 4096, 4097, 3 * 4096, 100000} {
		data := treeData(uint64(n), n)
		p := filepath.Join(dir, fmt.Sprint(n))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		got, fi, err := hashFile(p, make([]byte, 4096))
		if err != nil || got != hex.EncodeToString(want[:]) || fi.Size() != int64(n) || !fi.Mode().IsRegular() {
			t.Errorf("%d bytes: %s, %v, %v", n, got, fi, err)
		}
	}
	if _, _, err := hashFile(dir, make([]byte, 4096)); err == nil {
		t.Error("a directory was hashed")
	}
	if _, _, err := hashFile(filepath.Join(dir, "missing"), make([]byte, 4096)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// Longer or shorter than its size said.
	for _, c := range []struct {
		size  int64
		reads []int
	}{{10, []int{4096, 20}}, {10, []int{4, 0}}, {8192, []int{4096, 100, 0}}, {10, []int{20}}} {
		i := 0
		read := func(b []byte) (int, error) {
			if i == len(c.reads) {
				return 0, io.EOF
			}
			n := min(c.reads[i], len(b))
			i++
			return n, nil
		}
		err := readAll(read, c.size, make([]byte, 4096), io.Discard)
		if !errors.Is(err, errChanged) {
			t.Errorf("size %d, reads %v: %v, want errChanged", c.size, c.reads, err)
		}
	}
}

// The hash queue hands out the largest file queued first, whatever the
// order the files were queued in, and each file once.
func TestHashQueueLargestFirst(t *testing.T) {
	q := newHashQueue(&mirrorRun{}, "hash")
	q.started = true // no workers: the test takes the files itself
	sizes := map[string]int64{"a": 10, "b": 36 << 20, "c": 0, "d": 4096, "e": 1 << 20, "f": 4096}
	for _, rel := range []string{"a", "b", "c", "d", "e", "f", "b", "a"} {
		q.add(rel, sizes[rel])
	}
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	var got []string
	for {
		f, ok := q.next()
		if !ok {
			break
		}
		got = append(got, f.rel)
	}
	if len(got) != len(sizes) {
		t.Fatalf("got %v, want each of %d files once", got, len(sizes))
	}
	for i := 1; i < len(got); i++ {
		if sizes[got[i]] > sizes[got[i-1]] {
			t.Fatalf("order %v: %s (%d bytes) after %s (%d bytes)", got, got[i], sizes[got[i]], got[i-1], sizes[got[i-1]])
		}
	}
}

// walkTree lists what filepath.WalkDir and os.Lstat list, symlinks not
// followed, skipped paths left out, from several goroutines.
func TestWalkTree(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"a/b/c", "a/d", "skip/x", "e"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for i := range 50 {
		os.WriteFile(filepath.Join(root, "a/b/c", fmt.Sprint(i)), []byte(fmt.Sprint(i)), 0o640)
	}
	os.WriteFile(filepath.Join(root, "skip/x/f"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "e/suid"), []byte("x"), 0o4755)
	os.Symlink("a", filepath.Join(root, "link"))
	os.Symlink("/nonexistent", filepath.Join(root, "a/d/dangling"))
	want := map[string]os.FileInfo{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "skip" {
			return filepath.SkipDir
		}
		if p != root {
			want[rel], _ = os.Lstat(p)
		}
		return nil
	})
	var mu sync.Mutex
	got := map[string]os.FileInfo{}
	err := walkTree(root, func(rel string) bool { return rel == "skip" }, func(rel string, fi fs.FileInfo) {
		mu.Lock()
		defer mu.Unlock()
		if got[rel] != nil {
			t.Errorf("%s listed twice", rel)
		}
		got[rel] = fi
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("listed %d paths, want %d", len(got), len(want))
	}
	for rel, w := range want {
		g := got[rel]
		if g == nil || g.Mode() != w.Mode() || g.Size() != w.Size() || !g.ModTime().Equal(w.ModTime()) || g.Name() != w.Name() {
			t.Errorf("%s: %v, want %v", rel, g, w)
		}
	}
	if err := walkTree(filepath.Join(root, "missing"), func(string) bool { return false }, func(string, fs.FileInfo) { t.Error("listed something in a missing root") }, nil); err != nil {
		t.Errorf("missing root: %v", err)
	}
}

// Unchanged files whose mtimes differ are retouched beside the run, and
// the run's end (which goes through the state) waits for them: with
// nothing else to do, the end comes at once (-race finds it otherwise).
func TestMirrorRetouchBesideRun(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	files := smallTree(1500, 0)
	makeTree(t, pub, files, nil)
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	makeTree(t, dst, files, nil)
	treeFile(t, dst, "extra/gone.txt", []byte("not in the index"), 0o644)
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Chtimes(p, time.Unix(2e9, 0), time.Unix(2e9, 0))
		}
		return nil
	})
	o := mirrorOpts(url, dst)
	o.Delete = true
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Unchanged != len(files) || sum.Deleted != 1 || !hadPhase(sum, "retouch") {
		t.Errorf("%+v: want all %d files unchanged and retouched, one deleted", sum, len(files))
	}
}

// What the state knows of the local files is trusted whichever URL the
// next run mirrors (a release per URL) and whichever way it points: a file
// it vouches for is not read again, whether it holds the index's content
// or, changed in place with its size kept, another. Onto a tree a third of
// whose files changed so, the second run hashes nothing, from the same URL
// or from another.
func TestMirrorStateVouchesAcrossURLs(t *testing.T) {
	v1, v2 := smallTree(300, 0), smallTree(300, 1)
	changed := 0
	for rel := range v2 {
		if !bytes.Equal(v1[rel], v2[rel]) {
			changed++
			if len(v1[rel]) != len(v2[rel]) {
				t.Fatalf("%s changed size: the test wants same-size edits", rel)
			}
		}
	}
	if changed == 0 {
		t.Fatal("the two trees are the same")
	}
	for _, sameURL := range []bool{true, false} {
		t.Run(fmt.Sprintf("sameURL=%v", sameURL), func(t *testing.T) {
			tmp := t.TempDir()
			pubA, pubB, dst := filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "dst")
			makeTree(t, pubA, v1, nil)
			publishTree(t, pubA, 1)
			urlA, _ := serveTree(t, pubA)
			o := mirrorOpts(urlA, dst)
			o.Delete = true
			if _, err := Mirror(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			want := pubA
			if sameURL { // the release replaced where it is published
				if err := os.RemoveAll(pubA); err != nil {
					t.Fatal(err)
				}
				makeTree(t, pubA, v2, nil)
				publishTree(t, pubA, 2)
			} else {
				makeTree(t, pubB, v2, nil)
				publishTree(t, pubB, 1)
				o.URL, _ = serveTree(t, pubB)
				want = pubB
			}
			sum, err := Mirror(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, dst, false)
			if sum.NotModified || sum.Updated != changed || sum.Unchanged != len(v2)-changed || hadPhase(sum, "hash") || hadPhase(sum, "hash moved") {
				var phases []string
				for _, p := range sum.Phases {
					phases = append(phases, p.Name)
				}
				t.Errorf("second run: %d updated, %d unchanged, not modified %v, phases %q; want %d updated and %d unchanged, none read to be hashed",
					sum.Updated, sum.Unchanged, sum.NotModified, phases, changed, len(v2)-changed)
			}
		})
	}
}
