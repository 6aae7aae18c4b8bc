package zsyncpipe

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMirrorPhasesEndWithTheirWork checks that the rebuilds' phase ends
// when the last rebuild does, not when the mirror gets to wait for it
// (after the files fetched whole, here slowed by the hook).
func TestMirrorPhasesEndWithTheirWork(t *testing.T) {
	pub, dst := t.TempDir(), t.TempDir()
	var big []byte
	for i := range 8 {
		old := treeData(uint64(100+i), 6<<10) // under treeSmall: fetched whole
		treeFile(t, dst, fmt.Sprintf("s/f%02d.txt", i), old, 0o644)
		big = append(big, old...)
		treeFile(t, pub, fmt.Sprintf("s/f%02d.txt", i), treeData(uint64(200+i), 5000), 0o644)
	}
	treeFile(t, dst, "big.bin", treeData(1, 64<<10), 0o644)
	treeFile(t, pub, "big.bin", append(big, treeData(2, 4<<10)...), 0o644)
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	opts := mirrorOpts(url, dst)
	const slow = 300 * time.Millisecond
	opts.hook = func(ev string, paths []string) {
		if ev == "rename" && strings.Contains(filepath.ToSlash(paths[1]), "/s/") {
			time.Sleep(slow)
		}
	}
	sum, err := Mirror(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, pub, dst, false)
	ph := map[string]MirrorPhase{}
	for _, p := range sum.Phases {
		ph[p.Name] = p
	}
	rb := ph["rebuild"]
	last := max(ph["fetch whole"].End, ph["place held"].End)
	if rb.Name == "" || last < slow {
		t.Fatalf("no rebuild, or the files fetched whole were not slowed: %+v", sum.Phases)
	}
	if rb.End > last-slow/2 {
		t.Errorf("the rebuild phase ends at %v, the files fetched whole at %v: it should end with its one rebuild, well before them", rb.End, last)
	}
	if sum.Reused < int64(len(big)) {
		t.Errorf("reused %d bytes, want at least %d", sum.Reused, len(big))
	}
}
