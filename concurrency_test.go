package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// gatedSource serves ranges from a ReaderAt once open is closed, and closes
// arrived at the first call.
type gatedSource struct {
	source.ReaderAt
	arrived, open chan struct{}
	once          sync.Once
}

func (g *gatedSource) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	g.once.Do(func() { close(g.arrived) })
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.ReaderAt.ReadRanges(ctx, ranges, fn)
}

// TestSyncConcurrentSameOutput starts a second Sync of an output while the
// first is fetching. Before the lock, the second set the first's .part
// aside and wrote its own, and the first then renamed a file it had not
// verified (or nothing) into place. Now the second fails at once with
// ErrBusy, and the first finishes with the exact target.
func TestSyncConcurrentSameOutput(t *testing.T) {
	old, target := netData(11)
	dir, out := netDir(t, old)
	f := netControl(t, target, false)
	gate := &gatedSource{ReaderAt: source.ReaderAt{R: bytes.NewReader(target)}, arrived: make(chan struct{}), open: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errA := make(chan error, 1)
	go func() {
		_, err := Sync(ctx, SyncOptions{Control: f, Output: out, Source: gate, Fetch: netFetch()})
		errA <- err
	}()
	select {
	case <-gate.arrived:
	case err := <-errA:
		t.Fatalf("first sync ended before fetching: %v", err)
	case <-ctx.Done():
		t.Fatal("first sync never fetched")
	}
	start := time.Now()
	_, errB := Sync(ctx, SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	took := time.Since(start)
	close(gate.open)
	if err := <-errA; err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if !errors.Is(errB, ErrBusy) {
		t.Fatalf("second sync = %v, want ErrBusy", errB)
	}
	if took > 5*time.Second {
		t.Errorf("second sync took %v to fail, want at once", took)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
}

// TestSyncBusyLeavesFilesAlone: a sync that finds the .part locked (by
// another process: here another open file) changes nothing — not the
// output, not the .part, not its state.
func TestSyncBusyLeavesFilesAlone(t *testing.T) {
	old, target := netData(12)
	dir, out := netDir(t, old)
	f := netControl(t, target, false)
	part := []byte("someone else's partial result")
	if err := os.WriteFile(out+".part", part, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".part.state", []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := osfile.OpenLocked(out+".part", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, err = Sync(context.Background(), SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Sync = %v, want ErrBusy", err)
	}
	netCheckResult(t, out, old)
	netCheckResult(t, out+".part", part)
	netCheckDir(t, dir, netName, netName+".part", netName+".part.state")
	held.Close()
	if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}}); err != nil {
		t.Fatalf("Sync once the lock is free: %v", err)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
}

// TestSyncReadOnlyOutput: the partial file of a read-only output is
// writable by its owner, so that a later run (not root) can reopen it to
// resume; the result gets the output's mode back.
func TestSyncReadOnlyOutput(t *testing.T) {
	old, target := netData(15)
	_, out := netDir(t, old)
	if err := os.Chmod(out, 0o444); err != nil {
		t.Fatal(err)
	}
	f := netControl(t, target, false)
	ctx, cancel := context.WithCancel(context.Background())
	gate := &gatedSource{ReaderAt: source.ReaderAt{R: bytes.NewReader(target)}, arrived: make(chan struct{}), open: make(chan struct{})}
	go func() { <-gate.arrived; cancel() }()
	if _, err := Sync(ctx, SyncOptions{Control: f, Output: out, Source: gate}); err == nil {
		t.Fatal("cancelled sync succeeded")
	}
	fi, err := os.Stat(out + ".part")
	if err != nil || fi.Mode().Perm()&0o200 == 0 {
		t.Fatalf(".part after an interrupted sync of a read-only output: %v, %v; want owner-writable", fi.Mode(), err)
	}
	if _, err := Sync(context.Background(), SyncOptions{Control: f, Output: out, Source: source.ReaderAt{R: bytes.NewReader(target)}}); err != nil {
		t.Fatal(err)
	}
	netCheckResult(t, out, target)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("result mode %v, %v; want 0444", fi.Mode(), err)
	}
}
