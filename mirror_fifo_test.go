//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package zsyncpipe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// refusedAtOnce runs open, which must fail with ErrNotRegular on a FIFO
// without waiting for a writer. An open that blocks is left blocked: the
// test fails, and the process's exit ends it.
func refusedAtOnce(t *testing.T, what string, open func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- open() }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s of a FIFO = %v, want ErrNotRegular", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s of a FIFO waited for a writer", what)
	}
}

// TestMirrorLocalOpensRefuseFIFO: the mirror opens local files after the
// walk has seen them, to hash one where directories are not kept open
// (readPathInto: every system but Linux), to copy one holding a job's
// content (copyLocal) or to patch a small file from its old version
// (readInto); a FIFO put at such a path meanwhile blocked that open(2) for
// ever. Each now refuses it at once, and still reads regular files.
func TestMirrorLocalOpensRefuseFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	buf := make([]byte, 64)
	refusedAtOnce(t, "readInto", func() error {
		_, err := readInto(ctx, fifo, buf)
		return err
	})
	refusedAtOnce(t, "readPathInto", func() error {
		_, err := readPathInto(fifo, buf, io.Discard)
		return err
	})
	m := &mirrorRun{}
	j := &fileJob{e: &treeindex.Entry{Path: "copy", Size: 5}}
	refusedAtOnce(t, "copyLocal", func() error { return m.copyLocal(ctx, j, fifo) })

	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readInto(ctx, regular, buf); err != nil || !bytes.Equal(got, []byte("hello")) {
		t.Errorf("readInto(regular file) = %q, %v; want \"hello\"", got, err)
	}
	if _, err := readInto(ctx, regular, buf[:4]); err == nil {
		t.Error("readInto(a file larger than the buffer) succeeded")
	}
	var out bytes.Buffer
	if fi, err := readPathInto(regular, buf[:2], &out); err != nil || fi.Size() != 5 || out.String() != "hello" {
		t.Errorf("readPathInto(regular file) = %q, %v; want \"hello\"", out.String(), err)
	}
}

// TestMirrorStateFIFOs: FIFOs in place of the files a mirror keeps in
// Dir's state directory (its state, the record of its last run, the block
// sums of earlier runs, the cached index) blocked the run in open(2). They
// are now taken as missing: the run completes and replaces what it writes.
func TestMirrorStateFIFOs(t *testing.T) {
	tmp := t.TempDir()
	pub, dst := filepath.Join(tmp, "pub"), filepath.Join(tmp, "dst")
	files := smallTree(50, 0)
	makeTree(t, pub, files, nil)
	publishTree(t, pub, 1)
	url, _ := serveTree(t, pub)
	old := smallTree(50, 1)
	makeTree(t, dst, old, nil)
	meta := filepath.Join(dst, MirrorStateDir)
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"state.json", doneFile, chunksFile, "index"} {
		if err := syscall.Mkfifo(filepath.Join(meta, name), 0o644); err != nil {
			t.Fatalf("mkfifo: %v", err)
		}
	}
	o := mirrorOpts(url, dst)
	o.Delete = true
	done := make(chan error, 1)
	go func() {
		_, err := Mirror(context.Background(), o)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("FIFOs in the state directory blocked the mirror")
	}
	compareTrees(t, pub, dst, true)
}
