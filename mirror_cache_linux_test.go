package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/pagecachetest"
)

// TestMirrorDropsScannedCache: once the scan has read them, the cached
// pages of the local files the new tree replaces or drops are freed (the
// files themselves stay until a verified file replaces them), so that the
// pages of the files the run writes next reuse them; the files the new
// tree keeps stay cached, also when the scan reads them at every offset.
func TestMirrorDropsScannedCache(t *testing.T) {
	for _, all := range []bool{false, true} {
		t.Run(fmt.Sprintf("scan-unchanged=%v", all), func(t *testing.T) { testDropsScannedCache(t, all) })
	}
}

func testDropsScannedCache(t *testing.T, scanUnchanged bool) {
	tmp := pagecachetest.TempDir(t)
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	const size = 512 << 10
	keep, gone, old := treeData(701, size), treeData(702, size), treeData(703, size)
	changed := bytes.Clone(old)
	changed[size/2] ^= 0xff
	makeTree(t, dst, map[string][]byte{"keep/big": keep, "gone/big": gone, "chg/big": old}, nil)
	makeTree(t, pub, map[string][]byte{"keep/big": keep, "chg/big": changed, "new/big": append(bytes.Clone(gone[:size/2]), treeData(704, size/2)...)}, nil)
	for _, rel := range []string{"keep/big", "gone/big", "chg/big"} {
		p := filepath.Join(dst, rel)
		cacheClean(t, p)
		if r, n := pagecachetest.Count(t, p); r != n {
			t.Fatalf("%s: %d of %d pages cached before the run", rel, r, n)
		}
	}
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	o := mirrorOpts(url, dst) // without Delete: gone/big stays
	o.ScanUnchanged = scanUnchanged
	sum, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reused < size/2 {
		t.Errorf("reused %d bytes, want at least %d (new/big from gone/big)", sum.Reused, size/2)
	}
	if r, n := pagecachetest.Count(t, filepath.Join(dst, "gone/big")); r != 0 {
		t.Errorf("gone/big: %d of %d pages still cached after the scan read it", r, n)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "gone/big")); err != nil || !bytes.Equal(got, gone) {
		t.Errorf("gone/big changed (%v)", err)
	}
	if r, n := pagecachetest.Count(t, filepath.Join(dst, "keep/big")); r != n {
		t.Errorf("keep/big: %d of %d pages cached, want all: the tree keeps it", r, n)
	}
}

// TestMirrorDropsScannedSegmentsEarly: the scan drops the pages of a
// local file it will not need again as soon as it has read a segment of
// it in which nothing of the new files was found, while it still runs
// (the files fetched beside the scan, and the blocks it finds, then reuse
// them); a file in which it found data stays cached until the scan is
// over, for Extend.
func TestMirrorDropsScannedSegmentsEarly(t *testing.T) {
	tmp := pagecachetest.TempDir(t)
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	const size = 512 << 10
	gone, old := treeData(711, 6<<20), treeData(712, size)
	changed := bytes.Clone(old)
	changed[size/2] ^= 0xff
	makeTree(t, dst, map[string][]byte{"gone/big": gone, "chg/big": old}, nil)
	makeTree(t, pub, map[string][]byte{"chg/big": changed}, nil)
	cacheClean(t, filepath.Join(dst, "gone/big"))
	cacheClean(t, filepath.Join(dst, "chg/big"))
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	o := mirrorOpts(url, dst)
	type counts struct{ gone, goneN, chg, chgN int }
	var at *counts
	o.hook = func(ev string, _ []string) {
		if ev == "scanned" && at == nil {
			c := counts{}
			c.gone, c.goneN = pagecachetest.Count(t, filepath.Join(dst, "gone/big"))
			c.chg, c.chgN = pagecachetest.Count(t, filepath.Join(dst, "chg/big"))
			at = &c
		}
	}
	if _, err := Mirror(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if at == nil {
		t.Fatal("no scan")
	}
	// All but the pages the segments share at their edges.
	if at.gone > at.goneN/8 {
		t.Errorf("gone/big: %d of %d pages cached when the scan ended, want nearly none", at.gone, at.goneN)
	}
	if at.chg != at.chgN {
		t.Errorf("chg/big: %d of %d pages cached when the scan ended, want all: data was found in it", at.chg, at.chgN)
	}
}

// cacheClean leaves the file at p in the page cache with clean pages, as
// a tree copied a while ago and read since has (dirty pages are not
// dropped).
func cacheClean(t *testing.T, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.ReadFile(p); err != nil {
		t.Fatal(err)
	}
}

// TestMirrorDropsWrittenCache: a file of 256 KiB or more that the run
// wrote is out of the page cache once it is renamed into place, where the
// run flushes what it writes (its pages are clean then) and has dropped
// fewer bytes of cached pages than it writes (the files written after it
// reuse them); smaller ones stay cached, and so do all when the old
// versions the scan dropped were as large as what the run writes, or with
// NoFsync, whose pages may still be dirty.
func TestMirrorDropsWrittenCache(t *testing.T) {
	for _, c := range []struct {
		noFsync, spare bool
	}{{false, false}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("no-fsync=%v,spare=%v", c.noFsync, c.spare), func(t *testing.T) {
			tmp := pagecachetest.TempDir(t)
			pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
			const size = 512 << 10
			old := treeData(721, size)
			changed := bytes.Clone(old)
			changed[size/2] ^= 0xff
			local := map[string][]byte{"chg/big": old}
			if c.spare {
				// A file the new tree drops, which the scan reads and
				// drops: with it, the run frees more than it writes.
				local["gone/big"] = treeData(724, 2*size)
			}
			makeTree(t, dst, local, nil)
			makeTree(t, pub, map[string][]byte{
				"chg/big":   changed,               // rebuilt from its old version
				"new/big":   treeData(722, size),   // nothing local: fetched
				"new/small": treeData(723, 16<<10), // below the threshold
			}, nil)
			for rel := range local {
				cacheClean(t, filepath.Join(dst, rel))
			}
			publishTree(t, pub, 1)
			url, _ := serveTree(t, pub)
			o := mirrorOpts(url, dst)
			o.NoFsync = c.noFsync
			if _, err := Mirror(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			for _, rel := range []string{"chg/big", "new/big", "new/small"} {
				p := filepath.Join(dst, rel)
				want, _ := os.ReadFile(filepath.Join(pub, rel))
				// Count before reading the file back, which caches it.
				r, n := pagecachetest.Count(t, p)
				if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: not the published content (%v)", rel, err)
				}
				switch dropped := !c.noFsync && !c.spare && rel != "new/small"; {
				case dropped && r != 0:
					t.Errorf("%s: %d of %d pages cached after the run, want none", rel, r, n)
				case !dropped && r != n:
					t.Errorf("%s: %d of %d pages cached after the run, want all", rel, r, n)
				}
			}
		})
	}
}
