package main

// Interoperability with Debian's zsync 0.6.2 (zsync, zsyncmake). The tests
// skip when the programs are missing, except on CI (CI set), where .ci/run
// installs them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/demo"
	"github.com/zsyncpipe/zsyncpipe/rangeserve"
)

// interopSize is the size of the generated files: ~3 MB, large enough for
// seq_matches 2 and a few hundred fetched blocks.
const interopSize = 3 << 20

// TestInteropSyncFromZsyncmake: zsyncmake makes the control file, zsyncpipe
// syncs from it with the old version as seed.
func TestInteropSyncFromZsyncmake(t *testing.T) {
	lookTool(t, "zsyncmake")
	dir, srv, old, newData := interopFiles(t, 3)
	// Run in srv: the .zsync lands next to the target with the relative
	// URL "target.bin".
	tool(t, srv, "zsyncmake", "target.bin")
	ctl := filepath.Join(srv, "target.bin.zsync")
	if h, _ := splitControl(t, readFile(t, ctl)); h["URL"] != "target.bin" || h["zsync"] != "0.6.2" {
		t.Fatalf("zsyncmake header: %q", h)
	}
	// The same control file elsewhere, for -u.
	elsewhere := filepath.Join(dir, "elsewhere", "copy.zsync")
	writeFile(t, elsewhere, readFile(t, ctl))

	tests := []struct {
		name string
		args []string
	}{
		{"relative URL next to the control file", []string{ctl}},
		{"-u path of the control file", []string{"-u", ctl, elsewhere}},
		{"-u file URL", []string{"-u", (&url.URL{Scheme: "file", Path: filepath.ToSlash(ctl)}).String(), elsewhere}},
		{"-u directory", []string{"-u", srv + "/", elsewhere}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("out%d.bin", i))
			args := append([]string{"sync", "-i", old, "-o", out}, tt.args...)
			r := mustRun(t, args...)
			sameBytes(t, "output", readFile(t, out), newData)
			if !strings.Contains(r.stdout, "reused from local data") {
				t.Errorf("summary: %q", r.stdout)
			}
			if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
				t.Errorf(".part left behind: %v", err)
			}
		})
	}
}

// TestInteropRecordsMatchZsyncmake: "make --legacy" writes the same
// parameters and byte-identical block records as zsyncmake.
func TestInteropRecordsMatchZsyncmake(t *testing.T) {
	lookTool(t, "zsyncmake")
	data, _, _ := demo.Versions(5, interopSize)
	for _, size := range []int{1, 100, 2047, 2048, 2049, 4096, 100000, 1 << 20, interopSize} {
		for _, bs := range []string{"2048", "4096"} {
			t.Run(fmt.Sprintf("%d/%s", size, bs), func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, "f.bin"), data[:size])
				tool(t, dir, "zsyncmake", "-b", bs, "-o", "theirs.zsync", "f.bin")
				t.Chdir(dir)
				mustRun(t, "make", "-q", "--legacy", "-b", bs, "-o", "ours.zsync", "f.bin")

				th, tr := splitControl(t, readFile(t, "theirs.zsync"))
				oh, or := splitControl(t, readFile(t, "ours.zsync"))
				for _, k := range []string{"zsync", "Filename", "MTime", "Blocksize", "Length", "Hash-Lengths", "URL", "SHA-1"} {
					if th[k] != oh[k] {
						t.Errorf("%s: ours %q, zsyncmake %q", k, oh[k], th[k])
					}
				}
				for k := range oh {
					if _, ok := th[k]; !ok {
						t.Errorf("header %s: %q not written by zsyncmake", k, oh[k])
					}
				}
				if !bytes.Equal(or, tr) {
					rec := len(tr) / max(1, (size+2047)/2048)
					i := 0
					for i < min(len(or), len(tr)) && or[i] == tr[i] {
						i++
					}
					t.Errorf("records differ at byte %d (record %d); lengths ours %d, zsyncmake %d", i, i/max(rec, 1), len(or), len(tr))
				}
			})
		}
	}
}

// TestInteropZsyncClient: Debian's zsync client accepts our legacy control
// file and rebuilds the target, fetching the missing blocks from a loopback
// HTTP server.
func TestInteropZsyncClient(t *testing.T) {
	lookTool(t, "zsync")
	dir, srv, old, newData := interopFiles(t, 9)
	mustRun(t, "make", "-q", "--legacy", "-o", filepath.Join(srv, "target.bin.zsync"), filepath.Join(srv, "target.bin"))

	var ranged, whole atomic.Int64
	root, err := os.OpenRoot(srv)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	files := rangeserve.Handler(root, rangeserve.HandlerOptions{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" {
			ranged.Add(1)
		} else {
			whole.Add(1)
		}
		files.ServeHTTP(w, r)
	}))
	defer ts.Close()

	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	// zsync fetches the control file, resolves its relative URL against the
	// control file's URL and downloads the missing blocks.
	out := tool(t, work, "zsync", "-q", "-i", old, "-o", "out.bin", ts.URL+"/target.bin.zsync")
	sameBytes(t, "zsync output", readFile(t, filepath.Join(work, "out.bin")), newData)
	if ranged.Load() == 0 {
		t.Errorf("zsync made no range requests (%d plain ones); output: %s", whole.Load(), out)
	}

	// With a complete seed it needs no download at all.
	before := ranged.Load()
	tool(t, work, "zsync", "-q", "-i", filepath.Join(srv, "target.bin"), "-o", "out2.bin", ts.URL+"/target.bin.zsync")
	sameBytes(t, "zsync output from a complete seed", readFile(t, filepath.Join(work, "out2.bin")), newData)
	if n := ranged.Load() - before; n != 0 {
		t.Errorf("zsync made %d range requests with a complete seed", n)
	}
}

// TestInteropZsyncRejectsSpec08: zsync 0.6.2 refuses our default (spec 0.8,
// MD5) control file with exit 1 instead of silently comparing MD4 against
// MD5 records. This is why --legacy exists.
func TestInteropZsyncRejectsSpec08(t *testing.T) {
	zsync := lookTool(t, "zsync")
	_, newData, _ := demo.Versions(4, 100000)
	dir := t.TempDir()
	target := filepath.Join(dir, "t.bin")
	writeFile(t, target, newData)
	ctl := filepath.Join(dir, "t.bin.zsync")
	mustRun(t, "make", "-q", "-o", ctl, target)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zsync, "-q", "-i", target, "-o", "out.bin", ctl)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "Strong-Hash-Algorithm") {
		t.Errorf("zsync 0.6.2 on a spec 0.8 file: %v, want exit 1 naming Strong-Hash-Algorithm; output: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.bin")); !os.IsNotExist(err) {
		t.Errorf("zsync wrote output: %v", err)
	}
}

// interopFiles writes an old and a new version generated from seed: the new
// one as dir/srv/target.bin, the old one as dir/old.bin.
func interopFiles(t *testing.T, seed uint64) (dir, srv, old string, newData []byte) {
	t.Helper()
	oldData, newData, _ := demo.Versions(seed, interopSize)
	dir = t.TempDir()
	srv = filepath.Join(dir, "srv")
	writeFile(t, filepath.Join(srv, "target.bin"), newData)
	old = filepath.Join(dir, "old.bin")
	writeFile(t, old, oldData)
	return dir, srv, old, newData
}
