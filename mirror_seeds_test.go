package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/rollsum"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// TestMirrorUnchangedFilesAsSeeds checks what each scan policy finds of
// the data of files the new tree keeps unchanged, and that files that
// change or disappear are scanned in full by all three.
//
//   - keep.so is unchanged. cat-aligned.bin holds its first 24 KiB after
//     4 KiB of new data (whole blocks of both): the default finds them at
//     block boundaries. cat-shifted.bin holds 24 KiB of it from byte
//     33768 on (not a block boundary): only ScanUnchanged rolls through
//     keep.so and finds those.
//   - removed.dat is gone from the new tree and app.bin changed: their data,
//     shifted (cat-removed.bin) or edited in place, is found by every
//     policy, SkipUnchanged too.
func TestMirrorUnchangedFilesAsSeeds(t *testing.T) {
	tmp := t.TempDir()
	keep, app, removed := treeData(31, 64<<10), treeData(32, 100<<10), treeData(33, 30<<10)
	edited := slices.Clone(app)
	copy(edited[50<<10:], treeData(34, 2000))
	oldFiles := map[string][]byte{"lib/keep.so": keep, "bin/app.bin": app, "old/removed.dat": removed}
	newFiles := map[string][]byte{
		"lib/keep.so":         keep,
		"bin/app.bin":         edited,
		"bin/cat-aligned.bin": append(treeData(35, 4096), keep[:24<<10]...),
		"bin/cat-shifted.bin": append(treeData(36, 4096), keep[32<<10+1000:56<<10+1000]...),
		"bin/cat-removed.bin": append(treeData(37, 3000), removed[500:25000]...),
	}
	pub := filepath.Join(tmp, "pub")
	makeTree(t, pub, newFiles, nil)
	publishTree(t, pub, 1)
	// The new data: 2000 bytes of app.bin, the heads of the three files.
	const fresh = 2000 + 4096 + 4096 + 3000
	const slack = 4 * 2048 // a block or so around each edge
	const shifted = 24 << 10
	for _, c := range []struct {
		name       string
		skip, scan bool
		want       int64 // data of unchanged files fetched
	}{
		{"skip-unchanged", true, false, 2 * shifted},
		{"default", false, false, shifted},
		{"scan-unchanged", false, true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(tmp, c.name)
			makeTree(t, dst, oldFiles, nil)
			o := mirrorOpts(pub, dst)
			o.Delete, o.SkipUnchanged, o.ScanUnchanged = true, c.skip, c.scan
			sum, err := Mirror(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			t.Logf("%+v", sum)
			if sum.Fetched < c.want+fresh-slack || sum.Fetched > c.want+fresh+slack {
				t.Errorf("fetched %d bytes; want %d of unchanged files' data and %d new, give or take %d",
					sum.Fetched, c.want, fresh, slack)
			}
		})
	}
	o := mirrorOpts(pub, filepath.Join(tmp, "both"))
	o.SkipUnchanged, o.ScanUnchanged = true, true
	if _, err := Mirror(context.Background(), o); !errors.Is(err, ErrUsage) {
		t.Errorf("SkipUnchanged with ScanUnchanged: %v; want ErrUsage", err)
	}
}

// TestMirrorSkim checks MirrorOptions.NoSkim. The old tool.bin is
// unrelated data but for four pieces of the new one: two blocks between
// the second and the third window the scan skims (it skims after 64 KiB
// without a match: windows of 8 KiB every 32 KiB, from 64 KiB on), two
// blocks between the fourth and the fifth, a run of 48 KiB that the
// sixth window falls on (at 224 KiB: the first pair of blocks of the run
// in it is at 230,153), and two blocks alone after the run, between two
// windows, with no match after them. The default finds the second pair
// and the run (it goes back 64 KiB over what it skimmed once a window
// matches, to 164,617) and skims over the first pair and the last; NoSkim
// finds all four.
func TestMirrorSkim(t *testing.T) {
	tmp := t.TempDir()
	const bs = 2048 // what the publisher chooses for a file of this size
	tool := treeData(41, 320<<10)
	old := treeData(42, 400<<10)
	copy(old[112<<10+5000:], tool[20<<10:20<<10+2*bs])
	copy(old[180<<10+5000:], tool[60<<10:60<<10+2*bs])
	copy(old[200<<10+777:], tool[200<<10:200<<10+48<<10]) // ends at 254,729
	// Skimming begins again 64 KiB after the end of the last match of the
	// run (windows from about 313 KiB on, 8 KiB each, 32 KiB apart).
	copy(old[330000:], tool[100<<10:100<<10+2*bs])
	pub := filepath.Join(tmp, "pub")
	makeTree(t, pub, map[string][]byte{"bin/tool.bin": tool}, nil)
	publishTree(t, pub, 1)
	for _, c := range []struct {
		noSkim bool
		reused int64
	}{
		{false, 2*bs + 48<<10},
		{true, 6*bs + 48<<10},
	} {
		t.Run(fmt.Sprintf("NoSkim=%v", c.noSkim), func(t *testing.T) {
			dst := filepath.Join(tmp, fmt.Sprint(c.noSkim))
			makeTree(t, dst, map[string][]byte{"bin/tool.bin": old}, nil)
			o := mirrorOpts(pub, dst)
			o.NoSkim = c.noSkim
			sum, err := Mirror(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, pub, dst, false)
			if sum.Reused != c.reused || sum.Fetched != int64(len(tool))-c.reused {
				t.Errorf("reused %d and fetched %d bytes; want %d and %d", sum.Reused, sum.Fetched, c.reused, int64(len(tool))-c.reused)
			}
		})
	}
}

// The local files a run hashes give the scan their chunk checksums, so
// that a kept file is read only where a block looked for may be
// (stages.Seed.ChunkSums), and the run keeps them for the next runs
// (MirrorStateDir/chunks), with those of the kept files the scan read
// whole: a file the state vouches for, which is not read again, has them
// from there. A chunks file that is not whole is ignored.
func TestMirrorChunkSums(t *testing.T) {
	tmp := t.TempDir()
	keep, app, made := treeData(41, 64<<10+100), treeData(42, 100<<10), treeData(45, 40<<10+7)
	small := treeData(46, 6<<10+5) // fetched whole: its checksums come from the fetch
	edited := slices.Clone(app)
	copy(edited[50<<10:], treeData(43, 2000))
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	// made.so and small.so are new in the first generation: the mirror
	// writes them and never hashes them; made.so is rebuilt from blocks,
	// small.so fetched whole.
	makeTree(t, pub, map[string][]byte{"lib/keep.so": keep, "lib/made.so": made, "lib/small.so": small, "bin/app.bin": edited}, nil)
	publishTree(t, pub, 1)
	makeTree(t, dst, map[string][]byte{"lib/keep.so": keep, "bin/app.bin": app}, nil)
	sumsOf := func(b []byte) []uint32 {
		var c rollsum.Chunks
		c.Write(b)
		return c.Sums()
	}
	for gen, run := range []struct {
		name              string
		keep, made, small []uint32 // the seeds' ChunkSums; made.so and small.so are no seeds in the first run
		garble            bool     // the chunks file is cut short before the run
	}{
		{"hashed", sumsOf(keep), nil, nil, false},
		{"kept by the first run; made.so read whole", sumsOf(keep), nil, sumsOf(small), false},
		{"kept by the second run", sumsOf(keep), sumsOf(made), sumsOf(small), false},
		{"chunks file cut short", nil, nil, nil, true},
	} {
		if run.garble {
			p := filepath.Join(dst, MirrorStateDir, chunksFile)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data[:len(data)-3], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got := map[string]*stages.Seed{}
		o := mirrorOpts(pub, dst)
		o.seeds = func(seeds []stages.Seed) {
			for i := range seeds {
				got[filepath.Base(seeds[i].Name)] = &seeds[i]
			}
		}
		if _, err := Mirror(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		compareTrees(t, pub, dst, false)
		for name, want := range map[string][]uint32{"keep.so": run.keep, "made.so": run.made, "small.so": run.small} {
			s := got[name]
			if name != "keep.so" && gen == 0 {
				continue
			}
			if s == nil || !s.Aligned || !slices.Equal(s.ChunkSums, want) {
				t.Fatalf("%s: seed of %s %+v; want aligned, with %d chunk sums", run.name, name, s, len(want))
			}
		}
		// The next run has app.bin to rebuild again.
		copy(edited[80<<10+gen*100:], treeData(uint64(44+gen), 2000))
		makeTree(t, pub, map[string][]byte{"bin/app.bin": edited}, nil)
		publishTree(t, pub, uint64(gen+2))
	}
}
