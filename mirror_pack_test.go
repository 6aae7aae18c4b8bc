package zsyncpipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// packTestName names the pack the tests write.
const packTestName = "0123456789abcdef0123456789abcdef"

// packTree puts the content of every file of root's index that has no
// inline data and is not too large into one pack, as the publisher does
// (docs/trees.md, "Packs"), and rewrites the index; edit, if set, may
// change each record before it is written. It returns the index.
func packTree(t testing.TB, root string, edit func(e *treeindex.Entry, rec []byte) []byte) *treeindex.Index {
	t.Helper()
	idx := readTestIndex(t, root)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var pack bytes.Buffer
	for i := range idx.Entries {
		e := &idx.Entries[i]
		if e.Type != treeindex.File || e.Data != nil || e.Size == 0 || e.Size > treeindex.MaxPacked {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		rec := enc.EncodeAll(data, nil)
		e.Pack = nil
		if edit != nil {
			rec = edit(e, rec) // may set e.Pack.Encoding
		}
		encoding := treeindex.PackZstd
		if e.Pack != nil {
			encoding = e.Pack.Encoding
		}
		e.Pack = &treeindex.PackRef{Name: packTestName, Offset: int64(pack.Len()), Length: int64(len(rec)), Encoding: encoding}
		pack.Write(rec)
	}
	publishPack(t, root, packTestName, pack.Bytes(), idx)
	return idx
}

// publishPack writes the pack name with data into root's tree and idx, one
// generation on, as root's index.
func publishPack(t testing.TB, root, name string, data []byte, idx *treeindex.Index) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(treeindex.PackPath(name)))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	idx.Header.Generation++
	writeIndex(t, root, idx)
}

func readTestIndex(t testing.TB, root string) *treeindex.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(treeindex.IndexPath)))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := treeindex.ReadAll(bytes.NewReader(b), treeindex.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// packedSmallTree writes n small files of 300 to 3,000 bytes (and one
// large one) into root, publishes it and packs the small ones.
func packedSmallTree(t testing.TB, root string, n int, edit func(e *treeindex.Entry, rec []byte) []byte) *treeindex.Index {
	t.Helper()
	for i := range n {
		data := []byte(strings.Repeat(fmt.Sprintf("line %d of file %d\n", i%7, i), 20+i%150))
		treeFile(t, root, fmt.Sprintf("d%d/f%03d.txt", i%5, i), data, 0o644)
	}
	treeFile(t, root, "big.bin", treeData(3, 64<<10), 0o644)
	publishTree(t, root, 1)
	return packTree(t, root, edit)
}

// TestMirrorFromPacks: a first copy of a tree of small files takes them
// from the pack, many per request, and they are verified and placed.
func TestMirrorFromPacks(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	packedSmallTree(t, pub, 200, nil)
	url, reqs := serveTree(t, pub)
	sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	// big.bin too: with no local data to rebuild it from, its record
	// (random data, stored) is no longer than its blocks and rebuildCost.
	if sum.Packed != 201 || sum.PackFallbacks != 0 {
		t.Errorf("%d files from packs, %d by path; want 201 and 0", sum.Packed, sum.PackFallbacks)
	}
	// The index, the large file's control file and blocks, and the pack
	// records in a few multi-range requests: far fewer than one per file.
	if n := reqs.Load(); n > 40 {
		t.Errorf("%d requests for 200 small files", n)
	}
	if sum.Fetched >= 200*1500 {
		t.Errorf("fetched %d bytes: the records are not compressed", sum.Fetched)
	}
}

// TestMirrorHostilePacks: records that are corrupt, out of range, overlap,
// expand beyond the file's size, or a pack that is missing never get into
// Dir: each such file is fetched by its path instead, and counted.
func TestMirrorHostilePacks(t *testing.T) {
	bomb, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zeros := bomb.EncodeAll(make([]byte, 1<<20), nil) // 1 MiB from a few bytes
	bomb.Close()
	cases := []struct {
		name  string
		bad   int // files that must come by path
		edit  func(e *treeindex.Entry, rec []byte) []byte
		after func(t *testing.T, pub string, idx *treeindex.Index)
	}{
		{name: "corrupt", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f007.txt") {
				rec[len(rec)/2] ^= 0xff
			}
			return rec
		}},
		{name: "other content", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f008.txt") {
				rec[0] = 0 // not a zstd frame any more
			}
			return rec
		}},
		{name: "bomb", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f009.txt") {
				return zeros
			}
			return rec
		}},
		{name: "s2", bad: 0, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f012.txt") {
				return asS2(t, e, rec)
			}
			return rec
		}},
		{name: "s2 corrupt", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f013.txt") {
				rec = asS2(t, e, rec)
				rec[len(rec)-1] ^= 0xff
			}
			return rec
		}},
		{name: "s2 bomb", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f014.txt") {
				asS2(t, e, rec)
				return s2.Encode(nil, make([]byte, 1<<20)) // 1 MiB from a few bytes
			}
			return rec
		}},
		{name: "s2 short", bad: 1, edit: func(e *treeindex.Entry, rec []byte) []byte {
			if strings.HasSuffix(e.Path, "f015.txt") {
				return asS2(t, e, rec)[:len(rec)/2]
			}
			return rec
		}},
		{name: "missing pack", bad: 31, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			os.Remove(filepath.Join(pub, filepath.FromSlash(treeindex.PackPath(packTestName))))
		}},
		{name: "beyond the end", bad: 1, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			recordBeyondEnd(t, pub, idx, "f010.txt", contentRef)
		}},
		{name: "overlapping", bad: 1, after: func(t *testing.T, pub string, idx *treeindex.Index) {
			recordOverlapping(t, pub, idx, "f011.txt", contentRef)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub, dst := t.TempDir(), t.TempDir()
			idx := packedSmallTree(t, pub, 30, c.edit)
			if c.after != nil {
				c.after(t, pub, idx)
			}
			url, _ := serveTree(t, pub)
			var notes strings.Builder
			opts := mirrorOpts(url, dst)
			opts.Logf = func(f string, a ...any) { fmt.Fprintf(&notes, f+"\n", a...) }
			sum, err := Mirror(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			// 30 small files and big.bin (see TestMirrorFromPacks).
			if sum.PackFallbacks != c.bad || sum.Packed != 31-c.bad {
				t.Errorf("%d files from packs, %d by path; want %d and %d\n%s", sum.Packed, sum.PackFallbacks, 31-c.bad, c.bad, notes.String())
			}
		})
	}
}

// asS2 returns the zstd record rec of e as an S2 record, and marks e's
// reference as one.
func asS2(t *testing.T, e *treeindex.Entry, rec []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	data, err := dec.DecodeAll(rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Pack = &treeindex.PackRef{Encoding: treeindex.PackS2}
	return s2.Encode(nil, data)
}

// TestMirrorPrefersPack: a file with a control file that changed
// throughout is taken from its compressed record in the pack (zstd, or S2
// as the publisher packs such files by default) rather than rebuilt from
// blocks; one that changed a little is rebuilt.
func TestMirrorPrefersPack(t *testing.T) {
	for _, enc := range []string{treeindex.PackZstd, treeindex.PackS2} {
		t.Run(enc, func(t *testing.T) { testMirrorPrefersPack(t, enc) })
	}
}

func testMirrorPrefersPack(t *testing.T, enc string) {
	pub, dst := t.TempDir(), t.TempDir()
	text := func(seed int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < 40<<10; i++ {
			fmt.Fprintf(&b, "version %d, line %d: some source text\n", seed, i*seed%977)
		}
		return b.Bytes()
	}
	treeFile(t, dst, "rewritten.txt", text(1), 0o644)
	treeFile(t, pub, "rewritten.txt", text(2), 0o644)
	edited := treeData(5, 100<<10)
	treeFile(t, dst, "edited.bin", edited, 0o644)
	edited = append([]byte{}, edited...)
	copy(edited[50<<10:], "a small change")
	treeFile(t, pub, "edited.bin", edited, 0o644)
	publishTree(t, pub, 1)
	packTree(t, pub, func(e *treeindex.Entry, rec []byte) []byte {
		if enc == treeindex.PackS2 {
			return asS2(t, e, rec)
		}
		return rec
	})
	url, _ := serveTree(t, pub)
	sum, err := Mirror(context.Background(), mirrorOpts(url, dst))
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if sum.Packed != 1 || sum.Updated != 2 {
		t.Errorf("%d files from packs, %d updated; want 1 and 2", sum.Packed, sum.Updated)
	}
	if sum.Fetched > 20<<10 {
		t.Errorf("fetched %d bytes", sum.Fetched)
	}
}

// TestMirrorEarlyFetchesWaitForScan: the small files fetched beside the
// seed scan (by path or from packs) replace local files whose old content
// a large new file is made of, and a directory of the new tree replaces a
// local file holding more of it; every byte of the large file must still be
// found locally, so nothing was renamed or removed before the scan read it
// (with and without flushes, which change the way to the renames). A
// content listed three times is fetched once and copied.
func TestMirrorEarlyFetchesWaitForScan(t *testing.T) {
	for _, packs := range []bool{false, true} {
		for _, noFsync := range []bool{true, false} {
			t.Run(fmt.Sprintf("packs=%v,nofsync=%v", packs, noFsync), func(t *testing.T) {
				pub, dst := t.TempDir(), t.TempDir()
				const n = 40
				var big []byte
				var small int64
				for i := range n {
					old := treeData(uint64(100+i), 6<<10) // under treeSmall: fetched whole
					treeFile(t, dst, fmt.Sprintf("s%d/f%02d.txt", i%3, i), old, 0o644)
					big = append(big, old...)
					now := treeData(uint64(200+i), 5000)
					treeFile(t, pub, fmt.Sprintf("s%d/f%02d.txt", i%3, i), now, 0o644)
					small += int64(len(now))
				}
				in := treeData(300, 6<<10)
				treeFile(t, dst, "blocked", in, 0o644) // a directory in the new tree
				big = append(big, in...)
				now := treeData(301, 3000)
				treeFile(t, pub, "blocked/new.txt", now, 0o644)
				small += int64(len(now))
				// One small content three times: fetched once, copied
				// beside the scan and (in the blocked directory) after it.
				dup := treeData(302, 2000)
				for _, rel := range []string{"a/dup.txt", "blocked/dup.txt", "s1/dup.txt"} {
					treeFile(t, pub, rel, dup, 0o644)
				}
				small += int64(len(dup))
				treeFile(t, pub, "big.bin", big, 0o644)
				publishTree(t, pub, 1)
				if packs {
					packTree(t, pub, nil)
				}
				url, _ := serveTree(t, pub)
				opts := mirrorOpts(url, dst)
				opts.NoFsync, opts.Delete = noFsync, true
				sum, err := Mirror(context.Background(), opts)
				if err != nil {
					t.Fatal(err)
				}
				compareTrees(t, pub, dst, false)
				if sum.Reused < int64(len(big)) {
					t.Errorf("reused %d bytes of big.bin's %d: local files were replaced before the scan read them", sum.Reused, len(big))
				}
				if !packs && sum.Fetched != small {
					t.Errorf("fetched %d bytes, want %d (the small files only)", sum.Fetched, small)
				}
				if packs && sum.Packed != n+2 {
					t.Errorf("%d files from packs, want %d", sum.Packed, n+2)
				}
			})
		}
	}
}

// TestDecodeRecordScratch decodes records of every encoding, one after
// the other into one scratch buffer as a batch does: raw records come as
// they are, the others are decoded at most to the entry's size, and a
// small record after a large one is not mixed up with it.
func TestDecodeRecordScratch(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	big := bytes.Repeat([]byte("large file "), 20000)
	small := []byte("a small file")
	m := &mirrorRun{}
	defer func() {
		if m.dec != nil {
			m.dec.Close()
		}
	}()
	var scratch []byte
	for i, c := range []struct {
		enc  string
		data []byte
		rec  []byte
		ok   bool
	}{
		{treeindex.PackRaw, small, small, true},
		{treeindex.PackZstd, big, enc.EncodeAll(big, nil), true},
		{treeindex.PackS2, small, s2.Encode(nil, small), true},
		{treeindex.PackRaw, big, big, true},
		{treeindex.PackZstd, small, enc.EncodeAll(small, nil), true},
		{treeindex.PackZstd, small[:5], enc.EncodeAll(small, nil), false}, // decodes to more than the index says
		{treeindex.PackS2, big[:100], s2.Encode(nil, big), false},
		{treeindex.PackS2, big, s2.Encode(nil, big), true},
	} {
		e := &treeindex.Entry{Size: int64(len(c.data)), Pack: &treeindex.PackRef{Encoding: c.enc}}
		got, err := m.decodeRecord(e, c.rec, &scratch)
		if (err == nil) != c.ok || c.ok && !bytes.Equal(got, c.data) {
			t.Errorf("record %d (%s, %d bytes): %d bytes, %v", i, c.enc, len(c.data), len(got), err)
		}
	}
}

// TestWriteVerifiedTakesOverPart: a file the scan opened a partial result
// for and that then comes from its pack is written over that file, from
// its start, without emptying it first: the same inode, cut to the
// content's length when it was longer, grown when it was shorter. Content
// that does not match the index takes nothing and creates no file.
func TestWriteVerifiedTakesOverPart(t *testing.T) {
	content := []byte(strings.Repeat("the new content of the file\n", 100))
	sum := sha256.Sum256(content)
	for _, old := range []int{len(content) + 5000, len(content), 10} {
		t.Run(fmt.Sprint(old), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "x.part")
			if err := os.WriteFile(p, bytes.Repeat([]byte{'o'}, old), 0o600); err != nil {
				t.Fatal(err)
			}
			before, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
			e := &treeindex.Entry{Path: "d/x.txt", Type: treeindex.File, Size: int64(len(content)), SHA256: sum[:], Mode: 0o640, MTime: mtime}
			newJob := func() *fileJob {
				f, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				return &fileJob{e: e, hex: hex.EncodeToString(sum[:]), how: "whole", part: &partFile{f: f, path: p, noState: true}}
			}
			m := &mirrorRun{opts: MirrorOptions{NoFsync: true}, dir: dir, parts: dir}

			bad := newJob()
			wrong := append([]byte{}, content...)
			wrong[7] ^= 1
			if err := m.writeVerifiedBytes(bad, wrong); !errors.Is(err, ErrVerify) {
				t.Fatalf("content that does not match: %v, want ErrVerify", err)
			}
			if bad.part == nil || bad.part.f == nil || bad.tmp != "" {
				t.Fatal("content that does not match took the partial result")
			}
			bad.part.close()
			if got, _ := os.ReadFile(p); len(got) != old {
				t.Fatalf("content that does not match changed the partial result to %d bytes", len(got))
			}

			j := newJob()
			if err := m.writeVerifiedBytes(j, content); err != nil {
				t.Fatal(err)
			}
			if j.tmp != p || j.part != nil {
				t.Fatalf("written to %s, not over the partial result %s", j.tmp, p)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, content) {
				t.Fatalf("the file holds %d bytes (%q…), want the %d of the content", len(got), got[:min(len(got), 40)], len(content))
			}
			after, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(before, after) {
				t.Error("a new file, not the partial result written over")
			}
			if after.Mode().Perm() != 0o640 || !after.ModTime().Equal(mtime) || j.fi == nil || j.fi.Size() != int64(len(content)) || !j.fi.ModTime().Equal(mtime) {
				t.Errorf("mode %v, mtime %v, recorded %v; want 0640 and %v", after.Mode(), after.ModTime(), j.fi, mtime)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("%d files in the directory, want only the partial result", len(entries))
			}
		})
	}
}

// BenchmarkDecodeRecord decodes the pack records of up to 2,000 files of
// Go's own source (GOROOT/src/cmd), as the publisher encodes them.
func BenchmarkDecodeRecord(b *testing.B) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(false),
		zstd.WithWindowSize(treeindex.MaxPacked), zstd.WithLowerEncoderMem(true))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	type record struct {
		e   *treeindex.Entry
		rec []byte
	}
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skip("no go command:", err)
	}
	var zrecs, srecs []record
	var total int64
	_ = filepath.WalkDir(filepath.Join(strings.TrimSpace(string(goroot)), "src", "cmd"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || len(zrecs) >= 2000 {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 || len(data) > treeindex.MaxPacked {
			return nil
		}
		size := int64(len(data))
		zrecs = append(zrecs, record{&treeindex.Entry{Size: size, Pack: &treeindex.PackRef{Encoding: treeindex.PackZstd}}, enc.EncodeAll(data, nil)})
		srecs = append(srecs, record{&treeindex.Entry{Size: size, Pack: &treeindex.PackRef{Encoding: treeindex.PackS2}}, s2.Encode(nil, data)})
		total += size
		return nil
	})
	if len(zrecs) == 0 {
		b.Skip("no Go source found")
	}
	for _, c := range []struct {
		name string
		recs []record
	}{{"zstd", zrecs}, {"s2", srecs}} {
		b.Run(c.name, func(b *testing.B) {
			m := &mirrorRun{}
			defer func() {
				if m.dec != nil {
					m.dec.Close()
				}
			}()
			var scratch []byte
			b.SetBytes(total)
			for b.Loop() {
				for _, r := range c.recs {
					if _, err := m.decodeRecord(r.e, r.rec, &scratch); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestPreferPacks: a rebuild becomes a fetch from its pack when the record
// is shorter than its missing blocks plus rebuildCost, and only then; a
// file the scan found whole stays a local copy, however short its record.
func TestPreferPacks(t *testing.T) {
	const size = 100 << 10
	cases := []struct {
		name    string
		reused  int64 // of size
		record  int64
		enc     string
		want    string
		reusedM int64 // what the run counts as reused afterwards
	}{
		{"record shorter than the missing blocks", size - 40<<10, 30 << 10, treeindex.PackS2, "whole", 0},
		{"record within rebuildCost of them", size - 4<<10, 4<<10 + rebuildCost - 1, treeindex.PackS2, "whole", 0},
		{"record longer than them and rebuildCost", size - 4<<10, 4<<10 + rebuildCost, treeindex.PackS2, "sync", size - 4<<10},
		{"found whole by the scan", size, 100, treeindex.PackS2, "sync", size},
		{"record of an unknown encoding", 0, 100, "lz77", "sync", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &treeindex.Entry{Path: "f", Size: size, Pack: &treeindex.PackRef{Name: packTestName, Length: c.record, Encoding: c.enc}}
			j := &fileJob{e: e, how: "sync", reused: c.reused}
			m := &mirrorRun{}
			m.reused.Add(c.reused)
			m.preferPacks([]*fileJob{j})
			if j.how != c.want || m.reused.Load() != c.reusedM || j.reused != c.reusedM {
				t.Errorf("how %q, reused %d (run %d); want %q, %d", j.how, j.reused, m.reused.Load(), c.want, c.reusedM)
			}
		})
	}
}

// TestMirrorLogfOneAtATime: notes come from many goroutines at once (here
// every pack batch finds its pack gone), but Logf is called one at a time,
// so that a caller may append them to a slice without a lock.
func TestMirrorLogfOneAtATime(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	packedSmallTree(t, pub, 400, nil) // more than 16 batches of 32 records
	os.Remove(filepath.Join(pub, filepath.FromSlash(treeindex.PackPath(packTestName))))
	url, _ := serveTree(t, pub)
	var in, most atomic.Int32
	var notes []string
	opts := mirrorOpts(url, dst)
	opts.Logf = func(f string, a ...any) {
		n := in.Add(1)
		defer in.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond) // others would come in meanwhile
		notes = append(notes, fmt.Sprintf(f, a...))
	}
	sum, err := Mirror(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	if most.Load() != 1 {
		t.Errorf("Logf ran %d times at once", most.Load())
	}
	if len(notes) < 2 || sum.PackFallbacks == 0 {
		t.Errorf("%d notes, %d files fetched by path: the missing pack did not make several", len(notes), sum.PackFallbacks)
	}
}
