package zsyncpipe

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
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
