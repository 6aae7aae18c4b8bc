package indexer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/frames"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// packTree writes n small text files, one large file and one tiny one.
func packTree(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		put(t, dir, fmt.Sprintf("s/f%02d.txt", i), []byte(strings.Repeat(fmt.Sprintf("file %d, line\n", i), 100+i)))
	}
	put(t, dir, "large.bin", randBytes(1, treeindex.MaxPacked+1)) // too large for a pack
	put(t, dir, "tiny.txt", []byte("tiny\n"))
	put(t, dir, "mid.txt", []byte(strings.Repeat("a file with a control file and a pack\n", 1000)))
	return dir
}

// packs lists the pack files of dir, with their sizes and mtimes.
func packs(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	ents, _ := os.ReadDir(filepath.Join(dir, filepath.FromSlash(treeindex.PackDir)))
	for _, d := range ents {
		fi, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		m[d.Name()] = fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
	}
	return m
}

// checkPacks reads dir's index and checks that every file that must be in
// a pack is (files with a control file too up to packMax bytes), that its
// record, in the encoding wanted (enc for those files, zstd or raw for the
// others), decodes to the file's content, and that no other file has a
// pack. It returns the index.
func checkPacks(t *testing.T, dir string, packMax int64, enc string) *treeindex.Index {
	t.Helper()
	x, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, e := range x.Entries {
		if e.Type != treeindex.File {
			continue
		}
		want := e.Data == nil && e.Size > 0 && e.Size <= treeindex.MaxPacked && (e.Control == "" || e.Size <= packMax)
		if (e.Pack != nil) != want {
			t.Fatalf("%s: pack %+v, want one: %v", e.Path, e.Pack, want)
		}
		if !want {
			continue
		}
		pack, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(treeindex.PackPath(e.Pack.Name))))
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		if e.Pack.Offset+e.Pack.Length > int64(len(pack)) {
			t.Fatalf("%s: record %+v beyond the pack's %d bytes", e.Path, e.Pack, len(pack))
		}
		rec := pack[e.Pack.Offset : e.Pack.Offset+e.Pack.Length]
		wantEnc := treeindex.PackZstd
		if e.Control != "" {
			wantEnc = enc
		}
		if e.Pack.Encoding != wantEnc && e.Pack.Encoding != treeindex.PackRaw {
			t.Fatalf("%s: encoding %q, want %q", e.Path, e.Pack.Encoding, wantEnc)
		}
		got := rec
		switch e.Pack.Encoding {
		case treeindex.PackZstd:
			got, err = dec.DecodeAll(rec, make([]byte, 0, e.Size))
		case treeindex.PackS2:
			got, err = s2.Decode(nil, rec)
		}
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		if sum := sha256.Sum256(got); !bytes.Equal(sum[:], e.SHA256) {
			t.Fatalf("%s: the record does not decode to the file", e.Path)
		}
	}
	checkControlPacks(t, dir, x)
	return x
}

// checkControlPacks checks that every entry of x with a control file has
// a control record (all control files of these trees are short), holding
// the control file's bytes, raw, in a pack of control records only.
func checkControlPacks(t *testing.T, dir string, x *treeindex.Index) {
	t.Helper()
	content := map[string]bool{}
	for _, e := range x.Entries {
		if e.Pack != nil {
			content[e.Pack.Name] = true
		}
	}
	for _, e := range x.Entries {
		if (e.ControlPack != nil) != (e.Control != "") {
			t.Fatalf("%s: control %q, control pack %+v", e.Path, e.Control, e.ControlPack)
		}
		if e.ControlPack == nil {
			continue
		}
		p := e.ControlPack
		if p.Encoding != treeindex.PackRaw || content[p.Name] {
			t.Fatalf("%s: control record %+v: not raw, or in a pack of contents", e.Path, p)
		}
		pack, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(treeindex.PackPath(p.Name))))
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		cf, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Control)))
		if err != nil {
			t.Fatal(err)
		}
		if p.Offset+p.Length > int64(len(pack)) || !bytes.Equal(pack[p.Offset:p.Offset+p.Length], cf) {
			t.Fatalf("%s: control record %+v is not the control file (%d bytes)", e.Path, p, len(cf))
		}
	}
}

// TestIndexPacks: the first pass packs every small file into one pack;
// a change adds a small pack and leaves the first alone; when more than
// half of a pack is garbage its live records move, and a pack no index
// refers to goes after the grace period, not before.
func TestIndexPacks(t *testing.T) {
	ctx := context.Background()
	dir := packTree(t, 20)
	res, err := Index(ctx, dir, Options{NoSync: true, PackLarge: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPacks(t, dir, treeindex.MaxPacked, treeindex.PackZstd)
	first := packs(t, dir)
	if len(first) != 2 || res.Packed != 21 || res.PackBytes == 0 || res.Controls != 2 || res.ControlsPacked != 2 {
		t.Fatalf("first pass: packs %v, %d packed (%d bytes), %d control files, %d packed; want a pack of 21 and one of 2 control files",
			first, res.Packed, res.PackBytes, res.Controls, res.ControlsPacked)
	}
	x, _ := ReadIndex(dir)
	var raw int64
	for _, e := range x.Entries {
		if e.Pack != nil {
			raw += e.Size
		}
	}
	if res.PackBytes*4 > raw {
		t.Errorf("%d bytes of packs for %d of text", res.PackBytes, raw)
	}

	// Nothing changed: nothing written.
	if res, err = Index(ctx, dir, Options{NoSync: true, PackLarge: true}); err != nil || res.Written || res.Packed != 0 {
		t.Fatalf("unchanged: %v, written %v, %d packed", err, res.Written, res.Packed)
	}

	// One file changes: one new pack of one record; the first is untouched.
	later := time.Now().Add(time.Minute)
	put(t, dir, "s/f03.txt", []byte("changed\n"+strings.Repeat("x", 500)))
	os.Chtimes(filepath.Join(dir, "s/f03.txt"), later, later)
	if res, err = Index(ctx, dir, Options{NoSync: true, PackLarge: true}); err != nil || res.Packed != 1 || res.Repacked != 0 {
		t.Fatalf("one change: %v, %d packed, %d repacked", err, res.Packed, res.Repacked)
	}
	checkPacks(t, dir, treeindex.MaxPacked, treeindex.PackZstd)
	second := packs(t, dir)
	for name, st := range first {
		if second[name] != st {
			t.Errorf("pack %s rewritten: %s, was %s", name, second[name], st)
		}
	}
	if len(second) != 3 {
		t.Errorf("packs after one change: %v", second)
	}

	// Most files change: the first pack is mostly garbage, its live
	// records are copied into the new pack, and it stays (grace period).
	for i := 4; i < 20; i++ {
		p := filepath.Join(dir, fmt.Sprintf("s/f%02d.txt", i))
		put(t, dir, fmt.Sprintf("s/f%02d.txt", i), []byte(fmt.Sprintf("new %d\n%s", i, strings.Repeat("y", 400))))
		os.Chtimes(p, later, later)
	}
	if res, err = Index(ctx, dir, Options{NoSync: true, PackLarge: true}); err != nil || res.Packed != 16+4 || res.Repacked != 4 {
		t.Fatalf("compaction: %v, %d packed, %d repacked; want 20 and 4", err, res.Packed, res.Repacked)
	}
	x = checkPacks(t, dir, treeindex.MaxPacked, treeindex.PackZstd)
	used := map[string]bool{}
	ctlPacks := map[string]bool{}
	for _, e := range x.Entries {
		if e.Pack != nil {
			used[e.Pack.Name+treeindex.PackSuffix] = true
		}
		if e.ControlPack != nil {
			used[e.ControlPack.Name+treeindex.PackSuffix] = true
			ctlPacks[e.ControlPack.Name+treeindex.PackSuffix] = true
		}
	}
	for name := range first {
		if used[name] != ctlPacks[name] {
			t.Errorf("the index still refers to the compacted pack %s", name)
		}
	}
	if len(ctlPacks) != 1 {
		t.Errorf("control packs %v, want the first pass's", ctlPacks)
	}
	third := packs(t, dir)
	for name := range first {
		if _, ok := third[name]; !ok {
			t.Errorf("pack %s removed before its grace period", name)
		}
	}
	if res.PacksRemoved != 0 {
		t.Errorf("%d packs removed", res.PacksRemoved)
	}

	// After the grace period, the packs no index refers to go.
	time.Sleep(time.Second + 100*time.Millisecond) // the record holds seconds
	if res, err = Index(ctx, dir, Options{NoSync: true, PackLarge: true, PackGrace: time.Second}); err != nil {
		t.Fatal(err)
	}
	fourth := packs(t, dir)
	var left []string
	for name := range fourth {
		left = append(left, name)
	}
	slices.Sort(left)
	var want []string
	for name := range used {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(left, want) || res.PacksRemoved != len(third)-len(want) {
		t.Errorf("after the grace period: packs %v (%d removed), want %v", left, res.PacksRemoved, want)
	}
	checkPacks(t, dir, treeindex.MaxPacked, treeindex.PackZstd)
}

// TestIndexPackGone: an entry whose pack is gone is read again and packed
// anew; NoPacks writes none and drops the references.
func TestIndexPackGone(t *testing.T) {
	ctx := context.Background()
	dir := packTree(t, 5)
	if _, err := Index(ctx, dir, Options{NoSync: true, PackLarge: true}); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, filepath.FromSlash(treeindex.PackDir)))
	res, err := Index(ctx, dir, Options{NoSync: true, PackLarge: true})
	if err != nil || res.Packed != 6 || !res.Written {
		t.Fatalf("pack gone: %v, %d packed, written %v", err, res.Packed, res.Written)
	}
	checkPacks(t, dir, treeindex.MaxPacked, treeindex.PackZstd)

	res, err = Index(ctx, dir, Options{NoSync: true, PackLarge: true, NoPacks: true})
	if err != nil || res.Packed != 0 {
		t.Fatalf("NoPacks: %v, %d packed", err, res.Packed)
	}
	x, _ := ReadIndex(dir)
	for _, e := range x.Entries {
		if e.Pack != nil || e.ControlPack != nil {
			t.Errorf("%s: pack with NoPacks", e.Path)
		}
	}
}

// TestIndexControlPacksLater: a pass over an index that predates control
// packs (the same entries without them) packs the control files as they
// are, without reading a file of the tree again; an entry whose control
// pack is gone gets a new record the same way.
func TestIndexControlPacksLater(t *testing.T) {
	ctx := context.Background()
	dir := packTree(t, 5)
	if _, err := Index(ctx, dir, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	x, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ctlPack string
	for i := range x.Entries {
		if p := x.Entries[i].ControlPack; p != nil {
			ctlPack = p.Name
			x.Entries[i].ControlPack = nil
		}
	}
	if ctlPack == "" {
		t.Fatal("no control pack")
	}
	writeTestIndex(t, dir, x)
	for _, step := range []string{"older index", "control pack gone"} {
		res, err := Index(ctx, dir, Options{NoSync: true})
		if err != nil || res.Hashed != 0 || res.ControlsPacked != 2 || !res.Written {
			t.Fatalf("%s: %v, %d files read, %d control files packed, written %v; want 0, 2, true",
				step, err, res.Hashed, res.ControlsPacked, res.Written)
		}
		checkPacks(t, dir, DefaultPackMax, treeindex.PackS2)
		x, _ := ReadIndex(dir)
		for _, e := range x.Entries {
			if e.ControlPack != nil {
				ctlPack = e.ControlPack.Name
			}
		}
		os.Remove(filepath.Join(dir, filepath.FromSlash(treeindex.PackPath(ctlPack))))
	}
}

// TestIndexPackMax: by default files with a control file are packed with
// S2 up to DefaultPackMax; PackMax moves that bound or (negative) packs only
// files without a control file; PackLarge packs them with zstd up to
// treeindex.MaxPacked.
func TestIndexPackMax(t *testing.T) {
	for _, c := range []struct {
		name    string
		opts    Options
		packMax int64
		enc     string
		packed  int
		midPack bool
	}{
		{"default", Options{}, DefaultPackMax, treeindex.PackS2, 6, true},
		{"none", Options{PackMax: -1}, 0, treeindex.PackS2, 5, false},
		{"below mid.txt", Options{PackMax: 32 << 10}, 32 << 10, treeindex.PackS2, 5, false},
		{"large", Options{PackLarge: true}, treeindex.MaxPacked, treeindex.PackZstd, 6, true},
		{"append-only", Options{AppendOnly: true}, 0, treeindex.PackS2, 5, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := packTree(t, 5)
			opts := c.opts
			opts.NoSync = true
			res, err := Index(context.Background(), dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			x := checkPacks(t, dir, c.packMax, c.enc)
			if res.Packed != c.packed || res.Controls != 2 {
				t.Errorf("%d packed, %d control files; want %d and 2", res.Packed, res.Controls, c.packed)
			}
			for _, e := range x.Entries {
				if e.Path == "mid.txt" && (e.Control == "" || (e.Pack != nil) != c.midPack) {
					t.Errorf("mid.txt: control %q, pack %+v; want a control file and a pack: %v", e.Control, e.Pack, c.midPack)
				}
			}
		})
	}
}

// TestIndexSums: packed files whose content does not compress (a raw
// record) get block sums in a sums pack, from sumsMin bytes on, with and
// without a control file: sums that describe the file (checked block by
// block against its control file's computation). Compressible files, files
// under sumsMin and legacy trees get none. An unchanged tree keeps them
// without reading a file; an index of before sums gets them on the next
// pass, its files read again.
func TestIndexSums(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string][]byte{
		"r/small.bin": randBytes(11, 5000),                 // no control file: blocks of 256
		"r/mid.bin":   randBytes(12, 60<<10),               // a control file too: blocks of 512
		"r/under.bin": randBytes(13, sumsMin-1),            // too small
		"text.txt":    bytes.Repeat([]byte("text "), 2000), // compresses
	}
	for rel, b := range files {
		put(t, dir, rel, b)
	}
	want := map[string]int{"r/small.bin": 256, "r/mid.bin": 512}
	res, err := Index(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.SumsPacked != len(want) {
		t.Errorf("%d sums packed, want %d", res.SumsPacked, len(want))
	}
	x, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]treeindex.PackRef{}
	for _, e := range x.Entries {
		bs, ok := want[e.Path]
		if (e.Sums != nil) != ok {
			t.Errorf("%s: sums %+v, want them: %v", e.Path, e.Sums, ok)
		}
		if !ok || e.Sums == nil {
			continue
		}
		refs[e.Path] = *e.Sums
		rec := readRecord(t, dir, e.Sums)
		f, err := control.DecodeSums(rec, e.Size, e.SHA256)
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		if f.Blocksize != bs || f.HashLengths != control.SumsHashLengths(bs) {
			t.Errorf("%s: blocks of %d, hash lengths %v; want %d, %v", e.Path, f.Blocksize, f.HashLengths, bs, control.SumsHashLengths(bs))
		}
		c, err := stages.BlockChecksums(ctx, bytes.NewReader(files[e.Path]), stages.ChecksumOptions{Blocksize: bs, Length: e.Size, HashLengths: control.SumsHashLengths(bs)})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.Checksums.Rsum, f.Checksums.Rsum) || !bytes.Equal(c.Checksums.Strong, f.Checksums.Strong) {
			t.Errorf("%s: the sums do not describe the file", e.Path)
		}
	}

	// Unchanged: nothing read, the same references.
	res, err = Index(ctx, dir, Options{NoSync: true})
	if err != nil || res.Hashed != 0 || res.Written {
		t.Fatalf("unchanged: %v, %d files read, written %v", err, res.Hashed, res.Written)
	}
	x, _ = ReadIndex(dir)
	for _, e := range x.Entries {
		if r, ok := refs[e.Path]; ok && (e.Sums == nil || *e.Sums != r) {
			t.Errorf("unchanged: %s: sums %+v, were %+v", e.Path, e.Sums, r)
		}
	}

	// An index of before sums: the files that want them are read again.
	for i := range x.Entries {
		x.Entries[i].Sums = nil
	}
	writeTestIndex(t, dir, x)
	res, err = Index(ctx, dir, Options{NoSync: true})
	if err != nil || res.Hashed != len(want) || res.SumsPacked != len(want) || !res.Written {
		t.Fatalf("older index: %v, %d files read, %d sums packed, written %v; want %d, %d, true",
			err, res.Hashed, res.SumsPacked, res.Written, len(want), len(want))
	}

	// Legacy trees have MD4 block hashes: no sums.
	legacy := t.TempDir()
	for rel, b := range files {
		put(t, legacy, rel, b)
	}
	if res, err := Index(ctx, legacy, Options{NoSync: true, Legacy: true}); err != nil || res.SumsPacked != 0 {
		t.Errorf("legacy: %v, %d sums packed", err, res.SumsPacked)
	}
}

// readRecord reads the record ref points to in dir's packs.
func readRecord(t *testing.T, dir string, ref *treeindex.PackRef) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(treeindex.PackPath(ref.Name))))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Offset+ref.Length > int64(len(b)) {
		t.Fatalf("record %+v past the end of a pack of %d bytes", ref, len(b))
	}
	return b[ref.Offset : ref.Offset+ref.Length]
}

// writeTestIndex writes x as dir's index.
func writeTestIndex(t *testing.T, dir string, x *treeindex.Index) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, filepath.FromSlash(treeindex.IndexPath)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := x.Write(f, treeindex.WriterOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestIndexFrames: files with a control file get compressed frames that
// decode to the file, unless they do not compress (or NoFrames); an
// unchanged file keeps its frames, a changed one gets new ones, and the
// old file of frames is retired like a pack.
func TestIndexFrames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	text := bytes.Repeat([]byte("all work and no play makes a dull tree index\n"), 8000) // 360 KB
	files := map[string][]byte{
		"text.txt":   text,
		"random.bin": randBytes(21, 300<<10), // does not compress
		"packed.txt": text[:200<<10],         // packed whole (PackMax)
		"small.txt":  []byte("small"),
	}
	for rel, b := range files {
		put(t, dir, rel, b)
	}
	opts := Options{NoSync: true, PackGrace: time.Nanosecond}
	res, err := Index(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Framed != 1 || res.FramesBytes <= 0 || res.FramesBytes > int64(len(text))/4 {
		t.Fatalf("framed %d files in %d bytes; want text.txt, compressed", res.Framed, res.FramesBytes)
	}
	x, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	framesOf := func(x *treeindex.Index, p string) *treeindex.Frames {
		for _, e := range x.Entries {
			if e.Path == p {
				return e.Frames
			}
		}
		t.Fatalf("%s not in the index", p)
		return nil
	}
	for _, p := range []string{"random.bin", "packed.txt", "small.txt"} {
		if f := framesOf(x, p); f != nil {
			t.Errorf("%s has frames %+v", p, f)
		}
	}
	fr := framesOf(x, "text.txt")
	check := func(fr *treeindex.Frames, content []byte) {
		t.Helper()
		stored, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(treeindex.FramesPath(fr.Name))))
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(dir, filepath.FromSlash(treeindex.FramesPath(fr.Name)))); fi.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("file of frames has mode %v: a web server cannot read it", fi.Mode())
		}
		l := frames.Layout{Encoding: fr.Encoding, FrameSize: fr.FrameSize, Size: int64(len(content)), Lengths: fr.Lengths}
		var got []byte
		dst := make([]byte, fr.FrameSize)
		for i, n := range fr.Lengths {
			b, err := l.Decode(dst, stored[:n], i)
			if err != nil {
				t.Fatal(err)
			}
			got, stored = append(got, b...), stored[n:]
		}
		if !bytes.Equal(got, content) || len(stored) != 0 {
			t.Fatalf("the frames decode to %d bytes that differ from the file (%d bytes left)", len(got), len(stored))
		}
	}
	check(fr, text)

	// Unchanged: nothing read, the same frames.
	res, err = Index(ctx, dir, opts)
	if err != nil || res.Hashed != 0 || res.Written {
		t.Fatalf("unchanged: %v, %d read, written %v", err, res.Hashed, res.Written)
	}
	x, _ = ReadIndex(dir)
	if f := framesOf(x, "text.txt"); f == nil || f.Name != fr.Name {
		t.Fatalf("unchanged: frames %+v, were %+v", f, fr)
	}

	// Changed: new frames; the old file is retired after its grace.
	text2 := append(bytes.ToUpper(text[:100000]), text[100000:]...)
	put(t, dir, "text.txt", text2)
	if _, err := Index(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	x, _ = ReadIndex(dir)
	fr2 := framesOf(x, "text.txt")
	if fr2 == nil || fr2.Name == fr.Name {
		t.Fatalf("changed: frames %+v", fr2)
	}
	check(fr2, text2)
	old := filepath.Join(dir, filepath.FromSlash(treeindex.FramesPath(fr.Name)))
	if _, err := os.Stat(old); err != nil {
		t.Errorf("old frames removed at once: %v", err)
	}
	time.Sleep(1100 * time.Millisecond) // the grace is counted in seconds
	if _, err := Index(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old frames still there after their grace: %v", err)
	}

	// A file of frames gone: the file is read again for new ones;
	// NoFrames writes none and drops those it had.
	os.Remove(filepath.Join(dir, filepath.FromSlash(treeindex.FramesPath(fr2.Name))))
	if res, err := Index(ctx, dir, opts); err != nil || res.Hashed != 1 || res.Framed != 1 {
		t.Fatalf("frames gone: %v, %d read, %d framed; want the file read again", err, res.Hashed, res.Framed)
	}
	no := opts
	no.NoFrames = true
	if _, err := Index(ctx, dir, no); err != nil {
		t.Fatal(err)
	}
	x, _ = ReadIndex(dir)
	if f := framesOf(x, "text.txt"); f != nil {
		t.Errorf("NoFrames: frames %+v", f)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, filepath.FromSlash(treeindex.FramesDir), "*"+tmpSuffix))
	if len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

// TestFrameSize: 64 KiB frames up to 1 GiB, then larger ones within
// treeindex.MaxFrames, and none past 16 GiB.
func TestFrameSize(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{
		{1, 64 << 10}, {1 << 30, 64 << 10}, {1<<30 + 1, 128 << 10},
		{16 << 30, 1 << 20}, {16<<30 + 1, 0},
	} {
		if got := frameSize(c.size); got != c.want {
			t.Errorf("frameSize(%d) = %d, want %d", c.size, got, c.want)
		}
		if fs := frameSize(c.size); fs > 0 && (c.size+fs-1)/fs > treeindex.MaxFrames {
			t.Errorf("frameSize(%d) = %d: more than %d frames", c.size, fs, treeindex.MaxFrames)
		}
	}
}
