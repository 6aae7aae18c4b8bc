package zsyncpipe

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
)

// A resume state is written over the last one in place; a save cut short
// can leave the start of the new state over the end of the old one, which
// may still be JSON that lists other blocks. Its checksum refuses it: the
// next sync uses the .part only as a seed, and its result is right.
func TestSyncRefusesTornState(t *testing.T) {
	old, target := resumeData(2)
	f := netControl(t, target, false)
	srv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv.Close)
	dir, out := netDir(t, old)
	resumeCancelled(t, f, srv, out, old)
	data, err := os.ReadFile(out + ".part.state")
	if err != nil {
		t.Fatal(err)
	}
	// Another bitmap byte, still base64 and JSON: blocks the state never
	// vouched for.
	i := bytes.Index(data, []byte(`"done":"`)) + len(`"done":"`)
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	if err := os.WriteFile(out+".part.state", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, why := loadState(out+".part", f, controlID(f)); st != nil || !strings.Contains(why, "checksum") {
		t.Fatalf("torn state: loaded %v, reason %q; want it refused for its checksum", st != nil, why)
	}
	sum, notes := syncNoting(t, f, out)
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
	if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "torn") }) {
		t.Errorf("no note of the torn state; notes: %q", notes)
	}
	if !slices.Contains(sum.Seeds, out+".part.seed") {
		t.Errorf("the partial result was not used as a seed: seeds %q", sum.Seeds)
	}
}
