package zsyncpipe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

const sumsTestName = "5555555555555555aaaaaaaaaaaaaaaa"

// sumsTree packs every file of root's published index up to
// treeindex.MaxPacked as a raw record, and gives those of 1 KiB and more
// block sums in a sums pack, as the publisher does for content that does
// not compress (docs/trees.md, "Packs"). edit, if set, may change each
// sums record before it is written. It returns the index.
func sumsTree(t testing.TB, root string, edit func(e *treeindex.Entry, rec []byte) []byte) *treeindex.Index {
	t.Helper()
	packTree(t, root, func(e *treeindex.Entry, rec []byte) []byte {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		e.Pack = &treeindex.PackRef{Encoding: treeindex.PackRaw}
		return data
	})
	idx := readTestIndex(t, root)
	var sums bytes.Buffer
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if e.Pack == nil || e.Size < 1024 {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		f, err := stages.BlockChecksums(context.Background(), bytes.NewReader(data),
			stages.ChecksumOptions{Blocksize: control.SumsBlocksize(e.Size), Length: e.Size,
				HashLengths: control.SumsHashLengths(control.SumsBlocksize(e.Size))})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := control.EncodeSums(f)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			rec = edit(e, rec)
		}
		e.Sums = &treeindex.PackRef{Name: sumsTestName, Offset: int64(sums.Len()), Length: int64(len(rec)), Encoding: treeindex.PackRaw}
		sums.Write(rec)
	}
	publishPack(t, root, sumsTestName, sums.Bytes(), idx)
	return idx
}

// headerChanged returns a copy of b with bytes 4 to 6 changed, as the
// MTIME field of a gzip header changes when the same data is compressed
// again.
func headerChanged(b []byte) []byte {
	c := bytes.Clone(b)
	for i := 4; i < 7 && i < len(c); i++ {
		c[i] ^= 0x5a
	}
	return c
}

// patchTrees writes n random (incompressible) files of 2 to 14 KiB and one
// of 60 KiB (which has a control file) into old, and into new the same
// files with their header changed, but for one, rewritten. It publishes new
// with raw records and block sums, edited by edit, and returns the bytes of
// the new files.
func patchTrees(t *testing.T, old, new string, n int, edit func(e *treeindex.Entry, rec []byte) []byte) (total int64) {
	t.Helper()
	for i := range n {
		rel := fmt.Sprintf("g%d/f%02d.json.gz", i%3, i)
		b := treeData(uint64(200+i), 2<<10+i%40*300)
		treeFile(t, old, rel, b, 0o644)
		nb := headerChanged(b)
		if i == 7 {
			nb = treeData(uint64(900+i), len(b))
		}
		treeFile(t, new, rel, nb, 0o644)
		total += int64(len(nb))
	}
	mid := treeData(300, 60<<10)
	treeFile(t, old, "mid.bin", mid, 0o644)
	treeFile(t, new, "mid.bin", headerChanged(mid), 0o644)
	publishTree(t, new, 1)
	sumsTree(t, new, edit)
	return total + int64(len(mid))
}

// TestMirrorPatchesFromOldVersion: files whose entries have block sums and
// a raw record are patched from their old versions: only the blocks they
// lack are fetched, many files' in few requests, and no control file is
// fetched (mid.bin has one). A file rewritten whole is fetched whole the
// same way.
func TestMirrorPatchesFromOldVersion(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	const n = 40
	total := patchTrees(t, dst, pub, n, nil)
	url, reqs := serveTree(t, pub)
	// A dry run says what the run will fetch, and changes nothing.
	o := mirrorOpts(url, dst)
	o.DryRun = true
	dry, err := Mirror(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	before := reqs.Load()
	sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
	if err != nil {
		t.Fatal(err)
	}
	reqs.Add(-before)
	compareTrees(t, pub, dst, false)
	if dry.Fetched != sum.Fetched || dry.Reused != sum.Reused {
		t.Errorf("dry run: %d bytes to fetch, %d reused; the run fetched %d, reused %d", dry.Fetched, dry.Reused, sum.Fetched, sum.Reused)
	}
	if sum.Patched != n+1 || sum.Packed != n+1 || sum.Updated != n+1 {
		t.Errorf("%d files patched, %d from packs, %d updated; want %d each", sum.Patched, sum.Packed, sum.Updated, n+1)
	}
	// A block of each (256 bytes, 512 for mid.bin) and the rewritten file.
	rewritten := int64(2<<10 + 7*300)
	if max := int64(n*256+512) + rewritten; sum.Fetched > max {
		t.Errorf("fetched %d bytes of %d, want at most %d", sum.Fetched, total, max)
	}
	if sum.Reused < total-rewritten-int64(n*256+512) {
		t.Errorf("reused %d bytes of %d", sum.Reused, total)
	}
	// The index, the sums pack, the content pack's ranges; no control file.
	if r := reqs.Load(); r > 6 {
		t.Errorf("%d requests", r)
	}
}

// TestMirrorHostileSums: block sums that do not parse, that describe
// another content, or a sums pack that is gone, never put a wrong byte in
// Dir: those files are fetched whole from their packs.
func TestMirrorHostileSums(t *testing.T) {
	const n = 12
	for _, c := range []struct {
		name    string
		edit    func(e *treeindex.Entry, rec []byte) []byte
		gone    bool
		patched int
	}{
		{name: "good", patched: n + 1},
		{name: "malformed", patched: n, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if e.Path == "g1/f04.json.gz" {
				rec[0] = 9 // another version
			}
			return rec
		}},
		{name: "other content", patched: n, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if e.Path == "g2/f05.json.gz" {
				// Sums of the old version: the whole file is "found", and
				// what is made of it does not verify.
				old := treeData(205, int(e.Size))
				f, err := stages.BlockChecksums(context.Background(), bytes.NewReader(old),
					stages.ChecksumOptions{Blocksize: control.SumsBlocksize(e.Size), Length: e.Size})
				if err != nil {
					panic(err)
				}
				b, _ := control.EncodeSums(f)
				return b
			}
			return rec
		}},
		{name: "pack gone", gone: true, patched: 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub, dst := t.TempDir(), t.TempDir()
			patchTrees(t, dst, pub, n, c.edit)
			if c.gone {
				os.Remove(filepath.Join(pub, filepath.FromSlash(treeindex.PackPath(sumsTestName))))
			}
			url, _ := serveTree(t, pub)
			sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			if sum.Patched != c.patched || sum.Packed != n+1 || sum.PackFallbacks != 0 {
				t.Errorf("%d patched, %d from packs, %d by path; want %d, %d, 0", sum.Patched, sum.Packed, sum.PackFallbacks, c.patched, n+1)
			}
		})
	}
}
