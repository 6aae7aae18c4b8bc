//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/faultserver"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// TestSyncFIFOSeed: a FIFO without a writer given as a seed blocked open(2)
// for ever; it is refused at once.
func TestSyncFIFOSeed(t *testing.T) {
	old, target := netData(13)
	dir, out := netDir(t, old)
	f := netControl(t, target, false)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := Sync(ctx, SyncOptions{Control: f, Output: out, Seeds: []string{fifo}, Source: source.ReaderAt{R: bytes.NewReader(target)}})
	if !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Sync with a FIFO seed = %v, want ErrNotRegular", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing the FIFO took %v", d)
	}
	netCheckResult(t, out, old)
}

// TestLoadControlFIFO: a control file may come through a FIFO (or a pipe,
// as with <(curl …)); while no writer comes, LoadControl waits only as long
// as its context lasts.
func TestLoadControlFIFO(t *testing.T) {
	_, target := netData(14)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ctl.zsync")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := LoadControl(ctx, fifo, LoadOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LoadControl(FIFO without writer) = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("LoadControl took %v after its context ended", d)
	}

	// A writer that opens the FIFO but never writes: the read ends with
	// the context too.
	fifo2 := filepath.Join(dir, "ctl2.zsync")
	if err := syscall.Mkfifo(fifo2, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		if w, err := os.OpenFile(fifo2, os.O_WRONLY, 0); err == nil {
			<-done
			w.Close()
		}
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if _, err := LoadControl(ctx2, fifo2, LoadOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("LoadControl(FIFO with a silent writer) = %v, want DeadlineExceeded", err)
	}

	// With a writer that writes a control file, it is read as from a file.
	fifo3 := filepath.Join(dir, "ctl3.zsync")
	if err := syscall.Mkfifo(fifo3, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := control.Write(&buf, netControl(t, target, false)); err != nil {
		t.Fatal(err)
	}
	go func() {
		if w, err := os.OpenFile(fifo3, os.O_WRONLY, 0); err == nil {
			w.Write(buf.Bytes())
			w.Close()
		}
	}()
	ctx3, cancel3 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel3()
	c, err := LoadControl(ctx3, fifo3, LoadOptions{})
	if err != nil || c.File.Length != int64(len(target)) {
		t.Fatalf("LoadControl(FIFO with a control file) = %v", err)
	}
}

// TestMakeFileFIFO: make of a FIFO is refused at once (its open blocked).
func TestMakeFileFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := MakeFile(ctx, fifo, MakeOptions{}); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("MakeFile(FIFO) = %v, want ErrNotRegular", err)
	}
}

// syncBesideFIFO syncs to the target of resumeData(seed) over an output
// holding its old version, after prepare has set up the output's partial
// files (a FIFO among them), and returns the output, the target and the
// sync's notes and error. It fails the test when the sync has not
// returned after 30 s: an open(2) of the FIFO waiting for a writer.
func syncBesideFIFO(t *testing.T, seed uint64, prepare func(out string, target []byte)) (dir, out string, target []byte, notes []string, err error) {
	t.Helper()
	old, target := resumeData(seed)
	f := netControl(t, target, false)
	srv := faultserver.New(target, faultserver.Options{})
	t.Cleanup(srv.Close)
	dir, out = netDir(t, old)
	prepare(out, target)
	f.URLs = []string{srv.URL()}
	done := make(chan error, 1)
	go func() {
		_, err := Sync(context.Background(), SyncOptions{
			Control: f, Output: out, HTTP: netHTTP(), NoFsync: true,
			Logf: func(format string, args ...any) { notes = append(notes, fmt.Sprintf(format, args...)) },
		})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a FIFO beside the output blocked the sync")
	}
	return dir, out, target, notes, err
}

// mkfifo makes a FIFO at path or fails the test.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
}

// TestSyncFIFOState: a FIFO in place of a partial result's resume state
// (out.part.state) blocked the sync in open(2), reading it and then
// writing it. The sync now takes it as no state: it notes that it cannot
// save one there and completes.
func TestSyncFIFOState(t *testing.T) {
	dir, out, target, notes, err := syncBesideFIFO(t, 3, func(out string, target []byte) {
		if err := os.WriteFile(out+".part", target[:len(target)/2], 0o644); err != nil {
			t.Fatal(err)
		}
		mkfifo(t, out+".part.state")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(notes, func(s string) bool { return strings.Contains(s, "FIFO") }) {
		t.Errorf("no note of the FIFO; notes: %q", notes)
	}
	netCheckResult(t, out, target)
	netCheckDir(t, dir, netName)
}

// TestSyncFIFOPart: a FIFO in place of the partial result (OUT.part) is
// opened without blocking (read-write), but cannot hold the result: the
// sync refuses it with ErrNotRegular and a message naming it, and leaves
// the output and the FIFO as they were. It failed with "truncate: invalid
// argument" before.
func TestSyncFIFOPart(t *testing.T) {
	old, _ := resumeData(4)
	_, out, _, _, err := syncBesideFIFO(t, 4, func(out string, _ []byte) { mkfifo(t, out+".part") })
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), out+".part is not a regular file") {
		t.Errorf("Sync with a FIFO as OUT.part = %v, want ErrNotRegular naming it", err)
	}
	netCheckResult(t, out, old)
	if fi, err := os.Lstat(out + ".part"); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is not left as it was: %v", err)
	}
}
