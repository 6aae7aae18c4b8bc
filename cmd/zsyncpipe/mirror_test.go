package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/indexer"
	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// mirrorTrees writes an old tree into dst and a new one into pub: a changed
// large file, a renamed one, small files, a link.
func mirrorTrees(t *testing.T, pub, dst string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	big, moved := blob(400<<10), blob(300<<10)
	changed := append([]byte{}, big...)
	copy(changed[200<<10:], blob(3000))
	when := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	put := func(root, rel string, data []byte, mode fs.FileMode) {
		writeFile(t, filepath.Join(root, rel), data)
		os.Chmod(filepath.Join(root, rel), mode)
		os.Chtimes(filepath.Join(root, rel), when, when)
		when = when.Add(time.Minute)
	}
	put(dst, "bin/tool", big, 0o755)
	put(dst, "data/old-name.dat", moved, 0o644)
	put(dst, "doc/a.txt", []byte("a\n"), 0o644)
	put(dst, "stale.txt", []byte("stale\n"), 0o644)
	put(pub, "bin/tool", changed, 0o755)
	put(pub, "data/sub/new-name.dat", moved, 0o644)
	put(pub, "doc/a.txt", []byte("a, changed\n"), 0o600)
	put(pub, "doc/b.txt", blob(5000), 0o644)
	if err := os.Symlink("../bin/tool", filepath.Join(pub, "doc", "tool")); err != nil {
		t.Fatal(err)
	}
}

// sameTree fails unless dst holds what pub does (files, modes, mtimes,
// links), and nothing else but the mirror's state.
func sameTree(t *testing.T, pub, dst string) {
	t.Helper()
	list := func(root string) map[string]string {
		m := map[string]string{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if rel == treeindex.Dir || rel == ".zsyncpipe-mirror" {
				return filepath.SkipDir
			}
			fi, _ := os.Lstat(p)
			desc := fi.Mode().String()
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				desc += " -> " + target
			case fi.Mode().IsRegular():
				data, _ := os.ReadFile(p)
				desc += " " + fi.ModTime().UTC().String() + " " + string(bytes.ToValidUTF8(data[:min(len(data), 64)], nil))
			}
			m[rel] = desc
			return nil
		})
		return m
	}
	want, got := list(pub), list(dst)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: not in the published tree", k)
		}
	}
}

// TestMirrorCommand: "zsyncpipe index" publishes a tree, "serve" and nginx
// serve it, and "zsyncpipe mirror --delete" turns an old tree into it.
func TestMirrorCommand(t *testing.T) {
	tmp := t.TempDir()
	pub := filepath.Join(tmp, "pub")
	mirrorTrees(t, pub, filepath.Join(tmp, "serve"))
	mirrorTrees(t, filepath.Join(tmp, "unused"), filepath.Join(tmp, "nginx"))
	mustRun(t, "index", "--no-fsync", pub)

	base, stop := startServe(t, pub)
	defer stop()
	dry := mustRun(t, "mirror", "-n", "--delete", base, filepath.Join(tmp, "serve"))
	if !strings.Contains(dry.stdout, "dry run") || !strings.Contains(dry.stderr, "new data/sub/new-name.dat") {
		t.Errorf("dry run: %s%s", dry.stdout, dry.stderr)
	}
	out := mustRun(t, "mirror", "--delete", base, filepath.Join(tmp, "serve"))
	// doc/b.txt comes from the pack index wrote (a.txt is inlined).
	if !strings.Contains(out.stdout, "2 deleted") || !strings.Contains(out.stdout, "1 small file from packs") ||
		strings.Contains(out.stdout, "by path") {
		t.Errorf("summary: %s", out.stdout)
	}
	sameTree(t, pub, filepath.Join(tmp, "serve"))

	// The index as published a minute ago: one written in the second it
	// is served in has a weak Last-Modified, which the mirror does not
	// rely on for "unchanged" (zsyncpipe.Fetched.Validator).
	past := time.Now().Add(-time.Minute)
	if err := os.Chtimes(filepath.Join(pub, filepath.FromSlash(treeindex.IndexPath)), past, past); err != nil {
		t.Fatal(err)
	}
	ng := nginxtest.Start(t, pub)
	if out := mustRun(t, "mirror", "--delete", ng.Base+"/", filepath.Join(tmp, "nginx")); !strings.Contains(out.stdout, "1 small file from packs") ||
		strings.Contains(out.stdout, "by path") {
		t.Errorf("summary: %s", out.stdout)
	}
	sameTree(t, pub, filepath.Join(tmp, "nginx"))
	again := mustRun(t, "mirror", "--delete", ng.Base+"/", filepath.Join(tmp, "nginx"))
	if !strings.Contains(again.stdout, "index not modified") || !strings.Contains(again.stdout, " 0 B downloaded") {
		t.Errorf("unchanged tree: %s", again.stdout)
	}
}

// TestMirrorCommandRefusesUnsafeIndex: exit code 1 for an index that would
// write outside DIR, and nothing written.
func TestMirrorCommandRefusesUnsafeIndex(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(pub, "etc")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "index", "--no-fsync", pub)
	base, stop := startServe(t, pub)
	defer stop()
	r := runZ(t, "mirror", base, dst)
	if r.code != exitBadControl || !strings.Contains(r.stderr, "outside the tree") {
		t.Fatalf("exit %d, stderr %q; want %d and a message about the link", r.code, r.stderr, exitBadControl)
	}
	if _, err := os.Lstat(filepath.Join(dst, "etc")); err == nil {
		t.Error("the link was created")
	}
	if r := runZ(t, "mirror", base); r.code != exitUsage {
		t.Errorf("one argument: exit %d, want %d", r.code, exitUsage)
	}
}

// TestMirrorCommandPackMax: by default index packs (S2) a file with a
// control file up to 256 KiB, and mirror takes a changed one from the pack
// when that is shorter than its missing blocks plus 16 KiB; --pack-max 0
// packs none, and the file is rebuilt from blocks.
func TestMirrorCommandPackMax(t *testing.T) {
	text := func(version int) []byte {
		var b strings.Builder
		for i := 0; b.Len() < 64<<10; i++ {
			fmt.Fprintf(&b, "// version %d, line %d: some source text that compresses\n", version, i*version%977)
		}
		return []byte(b.String())
	}
	for _, c := range []struct {
		flags  []string
		packed bool
	}{{nil, true}, {[]string{"--pack-max", "0"}, false}} {
		tmp := t.TempDir()
		pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
		writeFile(t, filepath.Join(dst, "src", "x.go"), text(1))
		writeFile(t, filepath.Join(pub, "src", "x.go"), text(2))
		mustRun(t, append(append([]string{"index", "--no-fsync"}, c.flags...), pub)...)
		x, err := indexer.ReadIndex(pub)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := x.Lookup("src/x.go")
		if e == nil || e.Control == "" || (e.Pack != nil) != c.packed || c.packed && e.Pack.Encoding != treeindex.PackS2 {
			t.Fatalf("%v: src/x.go listed as %+v", c.flags, e)
		}
		base, stop := startServe(t, pub)
		out := mustRun(t, "mirror", base, dst)
		stop()
		if strings.Contains(out.stdout, "1 small file from packs") != c.packed {
			t.Errorf("%v: summary: %s", c.flags, out.stdout)
		}
		sameTree(t, pub, dst)
	}
}

// TestMirrorCommandPatches: "zsyncpipe index" writes block sums for files
// whose content does not compress, and "zsyncpipe mirror" from nginx
// patches their old versions, whose header alone changed (gzip data
// compressed again), with and without a control file: the dry run lists
// them, the summary counts them, and little is downloaded.
func TestMirrorCommandPatches(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	rng := rand.New(rand.NewPCG(9, 10))
	var total int
	for i := range 31 {
		n := 2<<10 + i*300
		if i == 30 {
			n = 40 << 10 // has a control file
		}
		b := make([]byte, n)
		for k := range b {
			b[k] = byte(rng.Uint32())
		}
		rel := fmt.Sprintf("data/s%02d.json.gz", i)
		writeFile(t, filepath.Join(dst, rel), b)
		nb := bytes.Clone(b)
		nb[4], nb[5] = nb[4]^1, nb[5]^2
		writeFile(t, filepath.Join(pub, rel), nb)
		total += n
	}
	if out := mustRun(t, "index", "--no-fsync", pub); !strings.Contains(out.stdout, "the block sums of 31 files") {
		t.Errorf("index: %s", out.stdout)
	}
	ng := nginxtest.Start(t, pub)
	dry := mustRun(t, "mirror", "-n", ng.Base+"/", dst)
	if got := strings.Count(dry.stderr, "(patch)"); got != 31 {
		t.Errorf("dry run lists %d files to patch, want 31: %s", got, dry.stderr)
	}
	out := mustRun(t, "mirror", "-v", ng.Base+"/", dst)
	if !strings.Contains(out.stdout, "(31 patched from their old version)") {
		t.Errorf("summary: %s", out.stdout)
	}
	var fetched int
	if _, err := fmt.Sscanf(out.stdout[strings.Index(out.stdout, "bytes: "):], "bytes: %d reused, %d fetched", new(int), &fetched); err != nil || fetched > 31*512 {
		t.Errorf("fetched %d bytes of %d (%v): %s", fetched, total, err, out.stdout)
	}
	sameTree(t, pub, dst)
}

// TestMirrorCommandFrames: "zsyncpipe index" writes compressed frames of
// the files with a control file, and "zsyncpipe mirror" from nginx takes
// frames instead of the blocks a rebuilt file lacks in them, for fewer
// bytes than --no-frames, to the same tree.
func TestMirrorCommandFrames(t *testing.T) {
	tmp := t.TempDir()
	pub := filepath.Join(tmp, "pub")
	var old bytes.Buffer
	rng := rand.New(rand.NewPCG(11, 12))
	for old.Len() < 600<<10 {
		fmt.Fprintf(&old, "line %d of a log: level %d, code %d\n", old.Len(), rng.IntN(5), rng.IntN(1000))
	}
	nb := bytes.Clone(old.Bytes())
	for p := 0; p < len(nb)/2; p += 1000 {
		nb[p] = '#' // every block of the first half changes
	}
	writeFile(t, filepath.Join(pub, "log.txt"), nb)
	if out := mustRun(t, "index", "--no-fsync", pub); !strings.Contains(out.stdout, "compressed frames of 1 file ") {
		t.Errorf("index: %s", out.stdout)
	}
	ng := nginxtest.Start(t, pub)
	var received [2]int
	for k, flags := range [][]string{nil, {"--no-frames"}} {
		dst := filepath.Join(tmp, fmt.Sprint("dst", k))
		writeFile(t, filepath.Join(dst, "log.txt"), old.Bytes())
		out := mustRun(t, append(append([]string{"mirror", "-v"}, flags...), ng.Base+"/", dst)...)
		if has := strings.Contains(out.stdout, "compressed frames"); has != (k == 0) {
			t.Errorf("mirror %v: frames in the summary %v: %s", flags, has, out.stdout)
		}
		if _, err := fmt.Sscanf(out.stdout[strings.Index(out.stdout, "bytes: "):], "bytes: %d reused, %d fetched, %d received", new(int), new(int), &received[k]); err != nil {
			t.Fatalf("%v: %s", err, out.stdout)
		}
		sameTree(t, pub, dst)
	}
	if received[0]*2 > received[1] {
		t.Errorf("received %d bytes with frames, %d without", received[0], received[1])
	}
}
