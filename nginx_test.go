package zsyncpipe

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/httpsource"
	"github.com/zsyncpipe/zsyncpipe/internal/nginxtest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// Interoperability with real software: Debian's nginx-light serving the
// files, zsyncmake making control files, and the zsync 0.6.2 client reading
// ours. CI installs them (apt-get install nginx-light zsync); elsewhere the
// tests are skipped when they are missing.

// nginxPair writes an 8 MiB old version and a new one derived from it into
// a directory nginx can serve, and returns the directory and the contents.
func nginxPair(t *testing.T) (root string, old, target []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, 8))
	old = make([]byte, 8<<20)
	for i := range old {
		old[i] = byte(rng.Uint32())
	}
	target = mutate(rng, old, 2048, 40)
	root = t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "new.bin"), target, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, old, target
}

// nginxSync syncs the control file at url (downloaded from nginx, as the
// command does) with old as the existing output, and checks the result.
func nginxSync(t *testing.T, url string, old, target []byte) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dl, err := httpsource.Download(ctx, url, httpsource.Options{}, time.Time{})
	if err != nil {
		t.Fatalf("download %s: %v", url, err)
	}
	f, err := control.Read(bytes.NewReader(dl.Body))
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "new.bin")
	if err := os.WriteFile(out, old, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := Sync(ctx, SyncOptions{Control: f, Output: out, BaseURL: dl.FinalURL.String()})
	if err != nil {
		t.Fatalf("sync from %s: %v", url, err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, "new.bin")
	t.Logf("%s: reused %d, fetched %d bytes in %d requests for %d ranges, overhead %d, %v",
		url, sum.Reused, sum.Fetched, sum.Requests, sum.Ranges, sum.Overhead, sum.Duration.Round(time.Millisecond))
	if sum.Requests == 0 || sum.Fetched == 0 || sum.Reused+sum.Fetched != int64(len(target)) {
		t.Errorf("reused %d + fetched %d in %d requests: want some fetched, summing to %d", sum.Reused, sum.Fetched, sum.Requests, len(target))
	}
	// Most of the target is in the old version.
	if sum.Fetched > int64(len(target))/4 {
		t.Errorf("fetched %d of %d bytes", sum.Fetched, len(target))
	}
	return sum
}

func TestNginxSync(t *testing.T) {
	root, old, target := nginxPair(t)
	srv := nginxtest.Start(t, root)
	ctx := context.Background()

	// (a) A control file made by zsyncmake, with an absolute URL.
	t.Run("zsyncmake", func(t *testing.T) {
		zm := testtool.Look(t, "zsyncmake", "zsync")
		cmd := exec.Command(zm, "-u", srv.Base+"/new.bin", "-o", "zm.zsync", "new.bin")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("zsyncmake: %v\n%s", err, out)
		}
		before := len(srv.AccessLines(t, "/new.bin"))
		sum := nginxSync(t, srv.Base+"/zm.zsync", old, target)
		// nginx logs a request after its last byte is sent: give it a
		// moment.
		var n int64
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			n = int64(len(srv.AccessLines(t, "/new.bin")) - before)
			if n >= sum.Requests || time.Now().After(deadline) {
				break
			}
		}
		if n != sum.Requests {
			t.Errorf("nginx logged %d requests for new.bin, the summary %d", n, sum.Requests)
		}
	})

	// (b) Control files made by Make, in both formats, with the relative
	// URL resolved against the control file's URL.
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "spec-0.8", true: "legacy"}[legacy]
		t.Run("make-"+name, func(t *testing.T) {
			f, err := MakeFile(ctx, filepath.Join(root, "new.bin"), MakeOptions{Legacy: legacy})
			if err != nil {
				t.Fatal(err)
			}
			nginxWriteControl(t, filepath.Join(root, "new."+name+".zsync"), f)
			nginxSync(t, srv.Base+"/new."+name+".zsync", old, target)
		})
	}

	// (c) The zsync 0.6.2 client against a legacy control file made by
	// Make, from a seed that holds most of the target.
	t.Run("zsync-client", func(t *testing.T) {
		zsync := testtool.Look(t, "zsync", "zsync")
		f, err := MakeFile(ctx, filepath.Join(root, "new.bin"), MakeOptions{Legacy: true})
		if err != nil {
			t.Fatal(err)
		}
		nginxWriteControl(t, filepath.Join(root, "new.legacy.zsync"), f)
		cwd := t.TempDir()
		if err := os.WriteFile(filepath.Join(cwd, "old.bin"), old, 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(srv.AccessLines(t, "/new.bin"))
		cctx, cancel := context.WithTimeout(ctx, 120*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, zsync, "-q", "-i", "old.bin", "-o", "out.bin", srv.Base+"/new.legacy.zsync")
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("zsync: %v\n%s", err, out)
		}
		netCheckResult(t, filepath.Join(cwd, "out.bin"), target)
		lines := srv.AccessLines(t, "/new.bin")[before:]
		ranges := 0
		for _, l := range lines {
			if !strings.HasPrefix(l, "206 ") {
				t.Errorf("zsync's request answered: %s", l)
			}
			if _, spec, ok := strings.Cut(l, `"bytes=`); ok {
				ranges += strings.Count(spec, ",") + 1
			}
		}
		t.Logf("zsync: %d requests for %d ranges", len(lines), ranges)
		if len(lines) == 0 || ranges == 0 {
			t.Errorf("zsync made %d requests for %d ranges: it fetched nothing", len(lines), ranges)
		}
	})
}

func nginxWriteControl(t *testing.T, path string, f *control.File) {
	t.Helper()
	var buf bytes.Buffer
	if err := control.Write(&buf, f); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
