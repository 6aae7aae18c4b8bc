package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// treeSmall is the small-file threshold of the test publisher.
const treeSmall = 8 << 10

// publishTree writes, below root, the control file of every file of at
// least treeSmall bytes and the tree index, as a publisher does
// (docs/trees.md); generation numbers the index.
func publishTree(t testing.TB, root string, generation uint64) {
	t.Helper()
	ctx := context.Background()
	idx := &treeindex.Index{Header: treeindex.Header{Generation: generation, Small: treeSmall}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := filepath.ToSlash(p[len(root)+1:])
		if rel == treeindex.Dir {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := treeindex.Entry{Path: rel, Mode: treeindex.ModeOf(fi.Mode()), MTime: fi.ModTime()}
		switch {
		case fi.IsDir():
			e.Type = treeindex.Directory
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type, e.MTime = treeindex.Symlink, time.Time{}
			e.Mode = 0o777
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			e.Type, e.Size = treeindex.File, fi.Size()
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			e.SHA256 = h[:]
			if fi.Size() >= treeSmall {
				e.Control = treeindex.ControlPath(rel, false)
				cp := filepath.Join(root, filepath.FromSlash(e.Control))
				up := strings.Repeat("../", strings.Count(e.Control, "/"))
				f, err := MakeFile(ctx, p, MakeOptions{URLs: []string{up + rel}})
				if err != nil {
					return err
				}
				var buf bytes.Buffer
				if err := control.Write(&buf, f); err != nil {
					return err
				}
				if err := os.MkdirAll(filepath.Dir(cp), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(cp, buf.Bytes(), 0o644); err != nil {
					return err
				}
			} else if fi.Size() < 64 {
				e.Data = data
			}
		}
		idx.Entries = append(idx.Entries, e)
		return nil
	})
	if err != nil {
		t.Fatalf("publish %s: %v", root, err)
	}
	writeIndex(t, root, idx)
}

// writeIndex writes idx as the tree index of root.
func writeIndex(t testing.TB, root string, idx *treeindex.Index) {
	t.Helper()
	var buf bytes.Buffer
	if err := idx.Write(&buf, treeindex.WriterOptions{}); err != nil {
		t.Fatalf("write index: %v", err)
	}
	p := filepath.Join(root, filepath.FromSlash(treeindex.IndexPath))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	// A new index within the same second must still look modified, and
	// its Last-Modified must be a second or more before the server's Date
	// for the client to keep it (Fetched.Validator).
	mt := time.Now().Add(time.Duration(idx.Header.Generation)*time.Second - time.Minute)
	os.Chtimes(p, mt, mt)
}

// serveTree serves root over HTTP on loopback and counts the requests.
func serveTree(t testing.TB, root string) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	fsrv := http.FileServer(http.Dir(root))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/", &n
}

// treeFile writes a file of a test tree with its mode and mtime.
func treeFile(t testing.TB, root, rel string, data []byte, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	// The mtime follows the content, as a release's would.
	h := sha256.Sum256(data)
	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(int(h[0])<<16|int(h[1])<<8|int(h[2]))*time.Second + time.Duration(h[3]))
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
}

// treeData is a deterministic file content.
func treeData(seed uint64, n int) []byte {
	return randomBytes(rand.New(rand.NewPCG(seed, seed*7+1)), n)
}

// trees returns the files of an old and a new version of a tree: changed,
// moved, split, concatenated, new and removed files, small and large.
func trees() (old, new map[string][]byte) {
	a, b, c := treeData(1, 300<<10), treeData(2, 200<<10), treeData(3, 150<<10)
	lib := treeData(4, 120<<10)
	old = map[string][]byte{
		"bin/tool":         a,
		"lib/big.dat":      b,
		"lib/part.dat":     c,
		"share/lib.so":     lib,
		"doc/readme.txt":   []byte("hello, tree\n"),
		"doc/small.txt":    treeData(5, 3000),
		"doc/gone.txt":     treeData(6, 5000),
		"old/removed.dat":  treeData(7, 40<<10),
		"etc/conf":         []byte(strings.Repeat("x=1\n", 100)),
		"empty":            {},
		"deep/a/b/c/d.txt": treeData(8, 10<<10),
		"misc/note.txt":    treeData(13, 5000),
	}
	changed := append([]byte{}, a...)
	copy(changed[100<<10:], treeData(9, 2000))
	new = map[string][]byte{
		"bin/tool":          changed,       // changed in place
		"lib/moved/big.dat": b,             // moved
		"lib/part1.dat":     c[:70<<10+13], // split
		"lib/part2.dat":     append(append([]byte{}, c[70<<10+13:]...), treeData(10, 9000)...),
		"lib2/lib.so":       lib, // the same library twice
		"share/lib.so":      lib,
		"doc/readme.txt":    []byte("hello, new tree\n"),
		"doc/small.txt":     treeData(5, 3000),
		"doc/new.txt":       treeData(11, 4000),
		"etc/conf":          []byte(strings.Repeat("x=2\n", 100)),
		"empty":             {},
		"deep/a/b/c/d.txt":  treeData(8, 10<<10),
		"misc2/renamed.txt": treeData(13, 5000), // a small file moved: copied, not fetched
		"new/fresh.dat":     treeData(12, 60<<10),
		"new/fresh2.dat":    treeData(12, 60<<10), // the same new file three times:
		"new/fresh3.dat":    treeData(12, 60<<10), // fetched once, copied twice
		"new/s1.txt":        treeData(14, 900),    // and a small one
		"new/s2.txt":        treeData(14, 900),
		"new/s3.txt":        treeData(14, 900),
		"bin/tool-cat":      append(append([]byte{}, b[:50<<10]...), lib...), // concatenated
	}
	return old, new
}

// makeTree writes files into root with links and modes.
func makeTree(t testing.TB, root string, files map[string][]byte, links map[string]string) {
	t.Helper()
	for rel, data := range files {
		mode := fs.FileMode(0o644)
		if strings.HasPrefix(rel, "bin/") {
			mode = 0o755
		}
		treeFile(t, root, rel, data, mode)
	}
	for rel, target := range links {
		p := filepath.Join(root, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

// compareTrees fails unless got has what want has: types, contents, link
// targets, modes and mtimes (of files and directories); extra entries of
// got fail too unless allowExtra.
func compareTrees(t testing.TB, want, got string, allowExtra bool) {
	t.Helper()
	seen := map[string]bool{}
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == want {
			return err
		}
		rel := p[len(want)+1:]
		if rel == treeindex.Dir {
			return filepath.SkipDir
		}
		seen[rel] = true
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: missing: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			wt, _ := os.Readlink(p)
			gt, _ := os.Readlink(filepath.Join(got, rel))
			if wt != gt {
				t.Errorf("%s: link to %q, want %q", rel, gt, wt)
			}
			return nil
		case wi.Mode().IsRegular():
			wd, _ := os.ReadFile(p)
			gd, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(wd, gd) {
				t.Errorf("%s: content differs", rel)
			}
		}
		if !wi.ModTime().Equal(gi.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		return nil
	})
	if allowExtra {
		return
	}
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == got {
			return err
		}
		rel := p[len(got)+1:]
		if rel == MirrorStateDir {
			return filepath.SkipDir
		}
		if !seen[rel] {
			t.Errorf("%s: not in the published tree", rel)
		}
		return nil
	})
}

// mirrorOpts returns options for a test mirror.
func mirrorOpts(url, dir string) MirrorOptions {
	// Quick retries, but patient with a loaded machine: a stall is not a
	// failure here.
	return MirrorOptions{URL: url, Dir: dir, NoFsync: true,
		HTTP: httpsource.Options{Retries: 3, Backoff: 10 * time.Millisecond, IdleTimeout: 10 * time.Second}}
}

func TestMirrorOldToNew(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	oldFiles, newFiles := trees()
	// A local link to a directory outside DIR: --delete removes the link,
	// never what it points to.
	outside := filepath.Join(tmp, "outside")
	treeFile(t, outside, "keep.txt", []byte("not ours"), 0o644)
	makeTree(t, dst, oldFiles, map[string]string{"lib/link": "big.dat", "stale": "doc", "out": outside})
	makeTree(t, pub, newFiles, map[string]string{"lib/link": "moved/big.dat", "bin/up": "../doc/readme.txt"})
	os.Chmod(filepath.Join(pub, "doc"), 0o750)
	os.Chtimes(filepath.Join(pub, "doc"), time.Unix(1e9, 0), time.Unix(1e9, 0))
	publishTree(t, pub, 1)
	url, requests := serveTree(t, pub)

	// A dry run changes nothing and says what a run will do.
	var lines []string
	o := mirrorOpts(url, dst)
	o.DryRun, o.Delete = true, true
	o.Logf = func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }
	dry, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, MirrorStateDir)); err == nil {
		t.Error("the dry run wrote its state")
	}
	if _, err := os.Stat(filepath.Join(dst, "old/removed.dat")); err != nil {
		t.Error("the dry run deleted a file")
	}
	t.Logf("dry run: %+v\n%s", dry, strings.Join(lines, "\n"))
	if !strings.Contains(strings.Join(lines, "\n"), "new misc2/renamed.txt (copy)") {
		t.Error("the moved small file is not copied from its old place")
	}

	o = mirrorOpts(url, dst)
	o.Delete = true
	o.NoFsync = false // files placed in flushed batches (copies, duplicates)
	var last MirrorProgress
	var calls atomic.Int64
	o.Progress = func(p MirrorProgress) {
		calls.Add(1)
		if p.Phase == "finish" {
			last = p
		}
	}
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatalf("Mirror: %v", err)
	}
	if last.FilesTotal != int64(sum.New+sum.Updated) || last.FilesDone != last.FilesTotal || last.Reused+last.Fetched < last.Total || calls.Load() < 4 {
		t.Errorf("last progress %+v after %d calls; want every file done, for summary %+v", last, calls.Load(), sum)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep.txt")); err != nil {
		t.Errorf("--delete reached outside DIR through a link: %v", err)
	}
	t.Logf("%+v", sum)
	compareTrees(t, pub, dst, false)

	// Bytes of the new tree that no old file holds: the changed 2000 bytes
	// of bin/tool, 9000 new bytes of part2, the new small files and
	// fresh.dat, with a block of slack per rebuilt file.
	var fresh int64 = 60<<10 + 9000 + 4000 + 16 + 400 + 900
	if sum.Fetched > fresh+2000+6*2048 {
		t.Errorf("fetched %d bytes; the new data is about %d", sum.Fetched, fresh+2000)
	}
	if dry.Fetched != sum.Fetched {
		t.Errorf("dry run predicted %d bytes to fetch, the run fetched %d", dry.Fetched, sum.Fetched)
	}
	if sum.Deleted != 5 || sum.New == 0 || sum.Updated == 0 || sum.Unchanged == 0 {
		t.Errorf("summary %+v: want 5 deleted (gone.txt, removed.dat, big.dat, part.dat, note.txt) and some new, updated, unchanged", sum)
	}

	// Nothing changed: one request, nothing to do.
	before := requests.Load()
	again, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if n := requests.Load() - before; n != 1 || !again.NotModified || again.Fetched != 0 || again.New+again.Updated != 0 {
		t.Errorf("second run: %d requests, %+v; want one request and nothing to do", n, again)
	}
	compareTrees(t, pub, dst, false)

	// A local change that keeps size and mtime goes unnoticed by the
	// state, as with rsync; -c (Checksum) finds it.
	p := filepath.Join(dst, "bin", "tool")
	fi, _ := os.Stat(p)
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt([]byte("XXXX"), 1000)
	f.Close()
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	o.Checksum = true
	fixed, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if fixed.Updated != 1 || fixed.Fetched > 4096 {
		t.Errorf("-c after a same-size edit: %+v; want one file updated, a block fetched", fixed)
	}
	compareTrees(t, pub, dst, false)
}

func TestMirrorHostileIndexes(t *testing.T) {
	h := sha256.Sum256(nil)
	mt := time.Unix(1e9, 0)
	cases := map[string][]treeindex.Entry{
		"link out": {{Path: "l", Type: treeindex.Symlink, Mode: 0o777, Target: "../../etc"}},
		"link abs": {{Path: "l", Type: treeindex.Symlink, Mode: 0o777, Target: "/etc/passwd"}},
		"state":    {{Path: MirrorStateDir, Type: treeindex.Directory, Mode: 0o755, MTime: mt}},
		"size":     {{Path: "f", Type: treeindex.File, Size: 5, Mode: 0o644, SHA256: h[:]}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
			os.MkdirAll(pub, 0o755)
			os.WriteFile(filepath.Join(pub, "f"), []byte("12"), 0o644)
			writeIndex(t, pub, &treeindex.Index{Header: treeindex.Header{Generation: 1}, Entries: entries})
			url, _ := serveTree(t, pub)
			_, err := Mirror(context.Background(), mirrorOpts(url, dst))
			if err == nil {
				t.Fatal("hostile index accepted")
			}
			t.Log(err)
			if name != "size" && !errors.Is(err, relpath.ErrUnsafe) {
				t.Errorf("error %v does not wrap relpath.ErrUnsafe", err)
			}
			if name == "size" && !errors.Is(err, ErrVerify) && !errors.Is(err, ErrFetch) {
				t.Errorf("error %v wraps neither ErrVerify nor ErrFetch", err)
			}
			ents, _ := os.ReadDir(dst)
			for _, e := range ents {
				if e.Name() != MirrorStateDir {
					t.Errorf("%s was written", e.Name())
				}
			}
		})
	}
	// Malformed indexes (unsafe paths, duplicates) are refused by the
	// reader: a raw index with "../x".
	tmp := t.TempDir()
	pub := filepath.Join(tmp, "pub")
	raw := `{"zsyncpipe-tree":1,"generation":1}` + "\n" + `{"path":"../x","type":"dir","mode":493}` + "\n"
	os.MkdirAll(filepath.Join(pub, treeindex.Dir), 0o755)
	os.WriteFile(filepath.Join(pub, filepath.FromSlash(treeindex.IndexPath)), []byte(raw), 0o644)
	url, _ := serveTree(t, pub)
	if _, err := Mirror(context.Background(), mirrorOpts(url, filepath.Join(tmp, "dst"))); !errors.Is(err, treeindex.ErrFormat) {
		t.Fatalf("index with ../x: %v, want treeindex.ErrFormat", err)
	}
}

// smallTree returns n generated files of a few KiB in nested directories,
// plus two large ones; variant changes a third of them.
func smallTree(n int, variant uint64) map[string][]byte {
	files := map[string][]byte{}
	for i := range n {
		seed := uint64(i) + 1000
		if variant > 0 && i%3 == 0 {
			seed += variant << 32
		}
		files[fmt.Sprintf("d%02d/e%d/f%05d.txt", i%17, i%5, i)] = treeData(seed, 500+i%3000)
	}
	files["big/one.dat"] = treeData(50+variant, 200<<10)
	files["big/two.dat"] = treeData(60, 100<<10)
	return files
}

func TestMirrorGenerationChangesMidRun(t *testing.T) {
	tmp := t.TempDir()
	pubA, pubB, dst := filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "dst")
	makeTree(t, pubA, smallTree(60, 0), nil)
	publishTree(t, pubA, 1)
	makeTree(t, pubB, smallTree(60, 1), nil)
	publishTree(t, pubB, 2)
	// The server switches from generation 1 to 2 after a few files.
	var files atomic.Int64
	a, b := http.FileServer(http.Dir(pubA)), http.FileServer(http.Dir(pubB))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/"+treeindex.Dir+"/") && files.Add(1) > 10 {
			b.ServeHTTP(w, r)
			return
		}
		if files.Load() > 10 {
			b.ServeHTTP(w, r)
			return
		}
		a.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o := mirrorOpts(srv.URL+"/", dst)
	o.Parallel = 2
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatalf("Mirror: %v", err)
	}
	if sum.Restarts == 0 || sum.Generation != 2 {
		t.Errorf("summary %+v: want a restart and generation 2", sum)
	}
	compareTrees(t, pubB, dst, false)
}

func TestMirrorManySmallFiles(t *testing.T) {
	// 2000 files keep the test short with -race on a loaded machine;
	// docs/trees-measurements.md has measurements with 100,000.
	n := 2000
	if testing.Short() {
		n = 500
	}
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	makeTree(t, pub, smallTree(n, 0), nil)
	publishTree(t, pub, 1)
	url, requests := serveTree(t, pub)
	start := time.Now()
	sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	if sum.New != n+2 {
		t.Errorf("%d new files, want %d", sum.New, n+2)
	}
	// Per file: one request, whole (and a few retries on a loaded machine).
	if r := requests.Load(); r > int64(n)*11/10+10 {
		t.Errorf("%d requests for %d files", r, n)
	}
	compareTrees(t, pub, dst, false)
	before := requests.Load()
	start = time.Now()
	again, err := Mirror(context.Background(), mirrorOpts(url, dst))
	if err != nil {
		t.Fatal(err)
	}
	if r := requests.Load() - before; r != 1 || again.Unchanged != n+2 {
		t.Errorf("unchanged tree: %d requests, %+v", r, again)
	}
	t.Logf("%d files: first mirror %v (%v per file), unchanged %v", n, first, first/time.Duration(n), time.Since(start))
}

func TestMirrorResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	// Without flushes, and with them: the flushed run places its files in
	// batches after a syncfs, from a goroutine of its own (see
	// docs/trees.md, "Guarantees"), which a kill must not tear either.
	// A first copy (an empty DIR) too: it fetches its files with control
	// files whole (see seedlessWholeMax), through the same held, flushed
	// and renamed temporary files.
	for _, flush := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-fsync", true: "flush"}[flush], func(t *testing.T) {
			testMirrorResumeAfterKill(t, flush, false)
		})
	}
	t.Run("first copy", func(t *testing.T) { testMirrorResumeAfterKill(t, true, true) })
}

func testMirrorResumeAfterKill(t *testing.T, flush, first bool) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	oldFiles, newFiles := smallTree(80, 0), smallTree(80, 1)
	// The state names the unchanged files first (54), then those fetched.
	known := 60
	if first {
		oldFiles, known = map[string][]byte{}, 6
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	makeTree(t, dst, oldFiles, nil)
	makeTree(t, pub, newFiles, nil)
	publishTree(t, pub, 1)
	// Every file answer waits: the mirror takes seconds.
	var requests atomic.Int64
	fsrv := http.FileServer(http.Dir(pub))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if !strings.HasPrefix(r.URL.Path, "/"+treeindex.Dir+"/") {
			time.Sleep(300 * time.Millisecond)
		}
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMirrorResumeChild$", "-test.v")
	cmd.Env = append(os.Environ(), "ZSYNCPIPE_MIRROR_CHILD="+srv.URL+"/\n"+dst)
	if flush {
		cmd.Env = append(cmd.Env, "ZSYNCPIPE_MIRROR_CHILD_FLUSH=1")
	}
	var childOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitOnce sync.Once
	var waitErr error
	wait := func() error { waitOnce.Do(func() { waitErr = cmd.Wait() }); return waitErr }
	t.Cleanup(func() { cmd.Process.Kill(); wait() })
	// Kill it once its saved state knows a few fetched files.
	for {
		if ctx.Err() != nil {
			t.Fatalf("no state before the deadline; child output:\n%s", childOut.String())
		}
		st := loadMirrorState(filepath.Join(dst, MirrorStateDir), srv.URL+"/")
		if len(st.Files) >= known {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err == nil {
		t.Fatalf("child finished before it was killed; output:\n%s", childOut.String())
	}
	// Every file is its old or its new version, never a mix.
	placed := 0
	for rel, data := range newFiles {
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(rel)))
		switch {
		case first && errors.Is(err, fs.ErrNotExist):
			// not placed yet
		case err != nil:
			t.Errorf("%s: %v", rel, err)
		case bytes.Equal(got, data):
			placed++
		case !bytes.Equal(got, oldFiles[rel]):
			t.Errorf("%s: neither the old nor the new version", rel)
		}
	}
	before := requests.Load()
	o := mirrorOpts(srv.URL+"/", dst)
	o.NoFsync = !flush
	sum, err := Mirror(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	changed := 80/3 + 1 + 1
	if first {
		changed = len(newFiles)
	}
	t.Logf("killed with %d of %d files placed; resumed: %+v, %d requests", placed, len(newFiles), sum, requests.Load()-before)
	if sum.New+sum.Updated >= changed || sum.Updated+sum.New+sum.Unchanged != len(newFiles) {
		t.Errorf("resumed run rewrote %d files; %d changed in all and %d were in place", sum.New+sum.Updated, changed, placed)
	}
}

// TestMirrorResumeChild is the child process of TestMirrorResumeAfterKill:
// it mirrors until killed.
func TestMirrorResumeChild(t *testing.T) {
	env := os.Getenv("ZSYNCPIPE_MIRROR_CHILD")
	if env == "" {
		t.Skip("only run as the child of TestMirrorResumeAfterKill")
	}
	url, dst, _ := strings.Cut(env, "\n")
	o := mirrorOpts(url, dst)
	o.Parallel = 2
	o.NoFsync = os.Getenv("ZSYNCPIPE_MIRROR_CHILD_FLUSH") == ""
	_, err := Mirror(context.Background(), o)
	t.Logf("mirror ended: %v", err)
}

func TestMirrorFromLocalTree(t *testing.T) {
	// The same mirror through the file transport: a tree published in a
	// local directory (a mounted share, say).
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	oldFiles, newFiles := trees()
	makeTree(t, dst, oldFiles, nil)
	makeTree(t, pub, newFiles, map[string]string{"lib/link": "moved/big.dat"})
	publishTree(t, pub, 1)
	// With SkipUnchanged, the old tree's unchanged files are not scanned:
	// bin/tool-cat's copy of lib.so, which only an unchanged file holds, is
	// fetched; the rest is found as before.
	o := mirrorOpts(pub, dst)
	o.Delete, o.SkipUnchanged = true, true
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Fetched < 120<<10 || sum.Fetched > 220<<10 {
		t.Errorf("fetched %d bytes; want lib.so's 120 KiB and the new data", sum.Fetched)
	}
}

// An index the server reports unchanged since the last complete run ends
// the run after that one request: neither the state, nor the cached index,
// nor Dir is read. Recheck, Checksum, a first --delete and a run that did
// not finish each make the next run look at Dir again.
func TestMirrorUnchangedIndexOneRequest(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	makeTree(t, pub, smallTree(40, 0), nil)
	publishTree(t, pub, 1)
	url, requests := serveTree(t, pub)
	o := mirrorOpts(url, dst)
	o.NoFsync = false // files placed in flushed batches
	if _, err := Mirror(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	meta := filepath.Join(dst, MirrorStateDir)
	run := func(o MirrorOptions) (*MirrorSummary, int64) {
		t.Helper()
		before := requests.Load()
		sum, err := Mirror(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return sum, requests.Load() - before
	}

	// The state and the cached index unreadable: the run does not need them.
	for _, name := range []string{"state.json", "index"} {
		if err := os.Rename(filepath.Join(meta, name), filepath.Join(meta, name+".away")); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(dst, "d00/e0/f00000.txt")) // not looked for
	sum, n := run(o)
	if n != 1 || !sum.NotModified || sum.Unchanged != 42 || sum.Generation != 1 || sum.New+sum.Updated+sum.Deleted != 0 {
		t.Errorf("unchanged index: %d requests, %+v; want 1 request, 42 files unchanged, generation 1", n, sum)
	}
	if _, err := os.Stat(filepath.Join(meta, "state.json")); err == nil {
		t.Error("the run wrote the state")
	}
	for _, name := range []string{"state.json", "index"} {
		os.Rename(filepath.Join(meta, name+".away"), filepath.Join(meta, name))
	}

	// Recheck looks at Dir: the removed file comes back, and a temporary
	// file that a killed run left is removed.
	stale := filepath.Join(dst, "d01", "."+"f00001.txt"+tmpSuffix)
	os.WriteFile(stale, []byte("half"), 0o644)
	r := o
	r.Recheck = true
	if sum, n = run(r); sum.New != 1 || n != 3 {
		t.Errorf("recheck: %d requests, %+v; want the index (304), the missing file, the index again", n, sum)
	}
	compareTrees(t, pub, dst, false)
	if _, err := os.Lstat(stale); err == nil {
		t.Error("the temporary file left by a killed run is still there")
	}

	// A killed run left a file fetched whole complete beside its path
	// (held for the flush): it is taken, not fetched again. A temporary
	// file cut short is written over, and the file fetched.
	whole, cut := "d00/e0/f00000.txt", "d01/e1/f00001.txt"
	for _, rel := range []string{whole, cut} {
		data, err := os.ReadFile(filepath.Join(pub, rel))
		if err != nil {
			t.Fatal(err)
		}
		if rel == cut {
			data = data[:100]
		}
		dir, base := filepath.Split(filepath.Join(dst, rel))
		os.Remove(dir + base)
		if err := os.WriteFile(dir+"."+base+tmpSuffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if sum, n = run(r); sum.New != 2 || n != 3 || sum.Fetched != int64(len(smallTree(40, 0)[cut])) {
		t.Errorf("recheck after a kill: %d requests, %+v; want the index (304), %s, the index again", n, sum, cut)
	}
	compareTrees(t, pub, dst, false)

	// The last complete run did not delete: a run with Delete looks.
	os.WriteFile(filepath.Join(dst, "extra.txt"), []byte("x"), 0o644)
	d := o
	d.Delete = true
	if sum, _ = run(d); sum.Deleted != 1 {
		t.Errorf("first run with Delete: %+v; want extra.txt deleted", sum)
	}
	if sum, n = run(d); n != 1 || !sum.NotModified {
		t.Errorf("second run with Delete: %d requests, %+v; want one", n, sum)
	}

	// A run that fails (the server's file no longer matches the index)
	// leaves no record of completion.
	p := filepath.Join(dst, "big/one.dat")
	os.WriteFile(p, []byte("damaged"), 0o644)
	good, err := os.ReadFile(filepath.Join(pub, "big/one.dat"))
	pfi, serr := os.Stat(filepath.Join(pub, "big/one.dat"))
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	bad := bytes.Clone(good)
	bad[len(bad)/2]++
	os.WriteFile(filepath.Join(pub, "big/one.dat"), bad, 0o644)
	c := d
	c.Checksum = true
	_, err = Mirror(context.Background(), c)
	os.WriteFile(filepath.Join(pub, "big/one.dat"), good, 0o644)
	os.Chtimes(filepath.Join(pub, "big/one.dat"), pfi.ModTime(), pfi.ModTime())
	if err == nil {
		t.Fatal("the run with the file changed on the server succeeded")
	}
	if _, err := os.Stat(filepath.Join(meta, doneFile)); err == nil {
		t.Error("a failed run left its completion record")
	}
	if sum, n = run(d); sum.Updated != 1 || n < 2 {
		t.Errorf("after a failed run: %d requests, %+v; want the damaged file updated", n, sum)
	}
	compareTrees(t, pub, dst, false)
}

// An index replaced within the second its predecessor was served in
// keeps its Last-Modified to the second: the next run must not take the
// server's 304 for "unchanged". The Last-Modified is weak (not before the
// server's Date), so the client does not rely on it.
func TestMirrorIndexReplacedInSameSecond(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	makeTree(t, pub, smallTree(5, 0), nil)
	publishTree(t, pub, 1)
	idxPath := filepath.Join(pub, filepath.FromSlash(treeindex.IndexPath))
	// The server's clock and the index's time in the same second (a
	// time ahead of the Date header stands for it: nothing about the
	// second boundary can make this test pass by luck).
	same := time.Now().Add(time.Hour).Truncate(time.Second)
	os.Chtimes(idxPath, same, same)
	url, requests := serveTree(t, pub)
	o := mirrorOpts(url, dst)
	if _, err := Mirror(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	makeTree(t, pub, smallTree(5, 1), nil)
	publishTree(t, pub, 2)
	os.Chtimes(idxPath, same, same)
	before := requests.Load()
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.NotModified || sum.Generation != 2 || requests.Load()-before < 2 {
		t.Errorf("index replaced in the same second: %+v after %d requests; want generation 2 fetched", sum, requests.Load()-before)
	}
	compareTrees(t, pub, dst, false)
}

func TestFetchedValidator(t *testing.T) {
	lm := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		f    Fetched
		want time.Time
	}{
		{Fetched{ModTime: lm, Date: lm}, time.Time{}},                                  // same second
		{Fetched{ModTime: lm, Date: lm.Add(999 * time.Millisecond)}, time.Time{}},      // still within it
		{Fetched{ModTime: lm, Date: lm.Add(time.Second)}, lm},                          // served a second later
		{Fetched{ModTime: lm, Date: lm.Add(-time.Hour)}, time.Time{}},                  // ahead of the server's clock
		{Fetched{ModTime: time.Now().Add(-time.Minute)}, time.Now().Add(-time.Minute)}, // no Date: the local clock
		{Fetched{Date: lm}, time.Time{}},                                               // no Last-Modified
	} {
		if got := c.f.Validator(); got.Truncate(time.Second) != c.want.Truncate(time.Second) {
			t.Errorf("%+v: Validator() = %v, want %v", c.f, got, c.want)
		}
	}
}

// TestMirrorControlsFetchedOnce checks that the control files fetched ahead
// of the plan, while local files are hashed (prefetchControls), are only
// those of files the run rebuilds, each fetched once: not those of files
// found unchanged, moved (copied from their old place) or listed twice.
// It also checks the timeline of the run.
func TestMirrorControlsFetchedOnce(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	oldFiles, newFiles := trees()
	makeTree(t, dst, oldFiles, nil)
	makeTree(t, pub, newFiles, nil)
	publishTree(t, pub, 1)
	var mu sync.Mutex
	controls := map[string]int{}
	fsrv := http.FileServer(http.Dir(pub))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".zsync") {
			mu.Lock()
			controls[r.URL.Path]++
			mu.Unlock()
		}
		fsrv.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o := mirrorOpts(srv.URL+"/", dst)
	o.Delete = true
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatalf("Mirror: %v", err)
	}
	compareTrees(t, pub, dst, false)
	// Rebuilt: bin/tool (changed in place, same size: known only once
	// hashed), the two parts of the split file, the concatenation and the
	// first of the three copies of fresh.dat (new sizes: fetched ahead).
	want := map[string]int{}
	for _, rel := range []string{"bin/tool", "lib/part1.dat", "lib/part2.dat", "bin/tool-cat", "new/fresh.dat"} {
		want["/"+treeindex.ControlPath(rel, false)] = 1
	}
	mu.Lock()
	defer mu.Unlock()
	for p, n := range controls {
		if want[p] != n {
			t.Errorf("control file %s fetched %d times, want %d", p, n, want[p])
		}
	}
	for p := range want {
		if controls[p] == 0 {
			t.Errorf("control file %s not fetched", p)
		}
	}
	phases := map[string]MirrorPhase{}
	for _, p := range sum.Phases {
		if p.End < p.Start || p.End > sum.Duration {
			t.Errorf("phase %+v ends before it starts or after the run (%v)", p, sum.Duration)
		}
		phases[p.Name] = p
	}
	for _, name := range []string{"index", "walk", "hash", "prefetch controls", "controls", "scan", "rebuild"} {
		if _, ok := phases[name]; !ok {
			t.Errorf("no phase %q in %+v", name, sum.Phases)
		}
	}
	if p := phases["prefetch controls"]; p.Start > phases["hash"].End {
		t.Errorf("control files fetched after the hashing (%+v), not beside it (%+v)", p, phases["hash"])
	}
}
