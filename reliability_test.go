package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
)

// A control file fetched over HTTP may not send the client to local files:
// an absolute path resolves against the server, as a browser would resolve
// it, and a file: URL is refused.
func TestRemoteControlURLsStayRemote(t *testing.T) {
	old, target := netData(11)
	local := filepath.Join(t.TempDir(), "copy-of-target")
	if err := os.WriteFile(local, target, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := faultserver.New(target, faultserver.Options{Path: filepath.ToSlash(local)})
	t.Cleanup(srv.Close)
	base := srv.BaseURL() + "/pub/" + netName + ".zsync"

	t.Run("absolute path", func(t *testing.T) {
		dir, out := netDir(t, old)
		f := netControl(t, target, false, local)
		if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, BaseURL: base, HTTP: netHTTP(), Fetch: netFetch()}); err != nil {
			t.Fatal(err)
		}
		netCheckResult(t, out, target)
		netCheckDir(t, dir, netName)
		if srv.Requests() == 0 {
			t.Errorf("the local file %s was read instead of the server's path", local)
		}
	})
	t.Run("file URL", func(t *testing.T) {
		dir, out := netDir(t, old)
		f := netControl(t, target, false, "file://"+filepath.ToSlash(local))
		_, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, BaseURL: base, HTTP: netHTTP(), Fetch: netFetch()})
		if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "local") {
			t.Fatalf("err = %v, want ErrFetch refusing a local file", err)
		}
		netCheckResult(t, out, old)
		netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
	})
	// A control file read from the local disk may name local files.
	t.Run("local control file", func(t *testing.T) {
		dir, out := netDir(t, old)
		f := netControl(t, target, false, "file://"+filepath.ToSlash(local))
		if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, BaseURL: filepath.Join(dir, "x.zsync"), HTTP: netHTTP(), Fetch: netFetch()}); err != nil {
			t.Fatal(err)
		}
		netCheckResult(t, out, target)
	})
}

// A seed identical to the target gives 100 % reuse and no download, and an
// output that is already the target is neither fetched nor rewritten.
func TestUpToDate(t *testing.T) {
	_, target := netData(12)
	srv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv.Close)
	for _, legacy := range []bool{false, true} {
		f := netControl(t, target, legacy, srv.URL())
		dir, out := netDir(t, target)
		seed := filepath.Join(t.TempDir(), "seed")
		if err := os.WriteFile(seed, target, 0o644); err != nil {
			t.Fatal(err)
		}
		// Identical seed, no output yet.
		os.Remove(out)
		sum, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Seeds: []string{seed}, HTTP: netHTTP(), Fetch: netFetch()})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Reused != f.Length || sum.Fetched != 0 || srv.Requests() != 0 {
			t.Fatalf("legacy %v: identical seed: reused %d of %d, fetched %d, %d requests", legacy, sum.Reused, f.Length, sum.Fetched, srv.Requests())
		}
		netCheckResult(t, out, target)
		// The output is up to date: nothing is written.
		old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		if err := os.Chtimes(out, old, old); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(out)
		sum, err = Sync(context.Background(), SyncOptions{Control: f, Output: out, HTTP: netHTTP(), Fetch: netFetch()})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(out)
		if !sum.UpToDate || sum.Reused != f.Length || sum.Fetched != 0 || srv.Requests() != 0 {
			t.Errorf("legacy %v: up-to-date output: %+v, %d requests", legacy, sum, srv.Requests())
		}
		if !os.SameFile(before, after) || !after.ModTime().Equal(old) {
			t.Errorf("legacy %v: the up-to-date output was rewritten", legacy)
		}
		netCheckDir(t, dir, netName)
	}
}

// From a server that ignores ranges the file is downloaded at most once,
// whatever the concurrency, and the summary counts those bytes as
// downloaded; reused and fetched add up to the file.
func TestSyncIgnoredRangesSummary(t *testing.T) {
	old, target := netData(13)
	// More missing data, spread over the file: many calls at once.
	for i := 0; i < len(old); i += 40 << 10 {
		old[i] ^= 0xff
	}
	for _, opts := range []faultserver.Options{{IgnoreRanges: true}, {MaxRanges: 1, RejectStatus: 200}, {DropAfter: 3000, Faults: 3}} {
		srv := faultserver.New(target, opts)
		t.Cleanup(srv.Close)
		_, out := netDir(t, old)
		ho := netHTTP()
		ho.IdleTimeout = 10 * time.Second // the stream may pause 2 s between calls
		sum, err := Sync(context.Background(), SyncOptions{Control: netControl(t, target, false, srv.URL()), Output: out, HTTP: ho, Fetch: netFetch()})
		if err != nil {
			t.Fatalf("%+v: %v", opts, err)
		}
		netCheckResult(t, out, target)
		if sum.Reused+sum.Fetched != sum.Length {
			t.Errorf("%+v: reused %d + fetched %d != length %d", opts, sum.Reused, sum.Fetched, sum.Length)
		}
		if sum.Downloaded < sum.Fetched {
			t.Errorf("%+v: downloaded %d < fetched %d", opts, sum.Downloaded, sum.Fetched)
		}
		if opts.IgnoreRanges && sum.Downloaded > sum.Length+64<<10 {
			t.Errorf("%+v: downloaded %d for a %d-byte file", opts, sum.Downloaded, sum.Length)
		}
	}
}

// A sync stopped by its context (Ctrl-C) says so, says how to resume and
// how much is kept, and keeps its partial result for the next run.
func TestSyncInterrupted(t *testing.T) {
	old, target := netData(14)
	srv := faultserver.New(target, faultserver.Options{Stall: time.Minute})
	t.Cleanup(srv.Close)
	f := netControl(t, target, false, srv.URL())
	dir, out := netDir(t, old)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	ho := netHTTP()
	ho.IdleTimeout = time.Minute
	_, err := Sync(ctx, SyncOptions{Control: f, Output: out, HTTP: ho, Fetch: netFetch()})
	if !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "run the same command again to resume") ||
		!strings.Contains(err.Error(), fmt.Sprintf("of %d blocks kept", f.Blocks())) {
		t.Fatalf("err = %v, want ErrInterrupted with a resume hint", err)
	}
	netCheckResult(t, out, old)
	netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
	srv2 := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv2.Close)
	var notes []string
	if _, err := Sync(context.Background(), SyncOptions{Control: netControl(t, target, false, srv2.URL()), Output: out, HTTP: netHTTP(), Fetch: netFetch(),
		Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) }}); err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	if !strings.Contains(strings.Join(notes, "\n"), "resuming") {
		t.Errorf("second run did not resume: %q", notes)
	}
}
