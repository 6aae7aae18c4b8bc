package indexer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/treeindex"
)

// freshControl is the control file a fresh make writes for the file at rel
// of the tree at dir, as the indexer names it.
func freshControl(t *testing.T, dir, rel string, legacy bool) []byte {
	t.Helper()
	cf, err := zsyncpipe.MakeFile(context.Background(), filepath.Join(dir, filepath.FromSlash(rel)),
		zsyncpipe.MakeOptions{Legacy: legacy, URLs: []string{controlURL(rel, false)}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := control.Write(&b, cf); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkFresh fails unless the published control file and entry of rel are
// what a fresh make and a fresh hash give.
func checkFresh(t *testing.T, dir, rel string, legacy bool, step int) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(treeindex.ControlPath(rel, false))))
	if err != nil {
		t.Fatal(err)
	}
	if want := freshControl(t, dir, rel, legacy); !bytes.Equal(got, want) {
		t.Fatalf("step %d: the control file differs from a fresh make's (%d and %d bytes)", step, len(got), len(want))
	}
	if m := mismatch(t, dir); m != "" {
		t.Fatalf("step %d: %s", step, m)
	}
}

func appendTo(t *testing.T, p string, data []byte, mtime time.Time) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// TestIndexGrowing grows a file in ten steps and re-indexes it after each:
// the control file must equal a fresh make's, byte for byte, and the bytes
// read must be about the growth (the old partial block, the new data and a
// few sampled old blocks), not the file.
func TestIndexGrowing(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			const rel = "logs/app.log"
			p := filepath.Join(dir, "logs", "app.log")
			put(t, dir, rel, randBytes(7, 1<<20+123))
			put(t, dir, "other.bin", randBytes(8, 64<<10))
			mtime := time.Now().Add(-time.Hour)
			os.Chtimes(p, mtime, mtime)
			opts := Options{AppendOnly: true, NoSync: true}
			if _, err := Index(ctx, dir, opts); err != nil {
				t.Fatal(err)
			}
			checkFresh(t, dir, rel, false, 0) // the first index is not legacy
			if legacy {
				// Re-publish in the legacy format: every file is read again.
				opts.Legacy = true
				if _, err := Index(ctx, dir, opts); err != nil {
					t.Fatal(err)
				}
				checkFresh(t, dir, rel, true, 0)
			}
			const bs = 2048
			for step := 1; step <= 10; step++ {
				growth := 50<<10 + step*1777
				appendTo(t, p, randBytes(uint64(100+step), growth), mtime.Add(time.Duration(step)*time.Second))
				res, err := Index(ctx, dir, opts)
				if err != nil {
					t.Fatal(err)
				}
				checkFresh(t, dir, rel, legacy, step)
				// Read: the old partial block (< bs), the growth, and at most
				// growSamples+3 old blocks to check the prefix.
				if res.Hashed != 1 || res.Extended != 1 {
					t.Fatalf("step %d: %d files read, %d extended; want 1 and 1", step, res.Hashed, res.Extended)
				}
				if limit := int64(growth + (growSamples+4)*bs); res.HashedBytes < int64(growth) || res.HashedBytes > limit {
					t.Fatalf("step %d: read %d bytes for a growth of %d (limit %d)", step, res.HashedBytes, growth, limit)
				}
			}

			// A file rewritten in place (same inode), larger: read whole.
			fi0, _ := os.Stat(p)
			b, _ := os.ReadFile(p)
			b[0] ^= 1
			b = append(b, "more"...)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if fi1, _ := os.Stat(p); inodeOf(fi1) != inodeOf(fi0) {
				t.Fatal("the rewrite changed the inode; the test needs the same one")
			}
			os.Chtimes(p, mtime.Add(time.Minute), mtime.Add(time.Minute))
			res, err := Index(ctx, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Extended != 0 || res.HashedBytes < int64(len(b)) {
				t.Fatalf("a file rewritten in place was extended (%d bytes read)", res.HashedBytes)
			}
			checkFresh(t, dir, rel, legacy, 11)

			// Past the re-hash period, a growth is read whole.
			opts.Rehash = time.Nanosecond
			appendTo(t, p, []byte("tail\n"), mtime.Add(2*time.Minute))
			if res, err = Index(ctx, dir, opts); err != nil {
				t.Fatal(err)
			}
			if res.Extended != 0 || res.HashedBytes != int64(len(b)+5) {
				t.Fatalf("past the re-hash period: %d extended, %d bytes read", res.Extended, res.HashedBytes)
			}
			checkFresh(t, dir, rel, legacy, 12)

			// Without AppendOnly the sidecars go, and growth is read whole.
			opts.AppendOnly = false
			appendTo(t, p, []byte("tail\n"), mtime.Add(3*time.Minute))
			if res, err = Index(ctx, dir, opts); err != nil || res.Extended != 0 {
				t.Fatalf("without AppendOnly: %v, %d extended", err, res.Extended)
			}
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(growDir))); !os.IsNotExist(err) {
				t.Fatalf("sidecars left without AppendOnly: %v", err)
			}
			checkFresh(t, dir, rel, legacy, 13)
		})
	}
}

// TestIndexGrowingSidecarChecked corrupts and removes sidecars: the file
// is then read whole, never described from a bad state.
func TestIndexGrowingSidecarChecked(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const rel = "a.log"
	p := filepath.Join(dir, rel)
	put(t, dir, rel, randBytes(1, 300<<10))
	os.Chtimes(p, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))
	opts := Options{AppendOnly: true, NoSync: true}
	if _, err := Index(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	px := &pass{dir: dir}
	side := px.growPath(rel)
	b, err := os.ReadFile(side)
	if err != nil {
		t.Fatalf("no sidecar: %v", err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(side, b, 0o644); err != nil {
		t.Fatal(err)
	}
	appendTo(t, p, randBytes(2, 10<<10), time.Now().Add(-time.Minute))
	res, err := Index(ctx, dir, opts)
	if err != nil || res.Extended != 0 {
		t.Fatalf("corrupt sidecar: %v, %d extended", err, res.Extended)
	}
	checkFresh(t, dir, rel, false, 1)
	// The sidecar was rewritten: the next growth is extended again.
	appendTo(t, p, randBytes(3, 10<<10), time.Now().Add(-time.Second))
	if res, err = Index(ctx, dir, opts); err != nil || res.Extended != 1 {
		t.Fatalf("after a rewritten sidecar: %v, %d extended", err, res.Extended)
	}
	checkFresh(t, dir, rel, false, 2)
	// A file that is gone takes its sidecar along.
	os.Remove(p)
	if _, err := Index(ctx, dir, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(side); !os.IsNotExist(err) {
		t.Fatalf("sidecar of a removed file left: %v", err)
	}
}

// TestWatchGrowing appends to a file under a running Watch with
// AppendOnly: each growth is published, read from the old end, and the
// control file is a fresh make's.
func TestWatchGrowing(t *testing.T) {
	dir := t.TempDir()
	const rel = "seq/out.dat"
	p := filepath.Join(dir, "seq", "out.dat")
	put(t, dir, rel, randBytes(1, 200<<10))
	old := time.Now().Add(-time.Minute)
	os.Chtimes(p, old, old)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		extended int
		errs     []error
	)
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, dir, Options{
			NoSync: true, AppendOnly: true,
			Settle: 100 * time.Millisecond,
			Rescan: time.Hour,
			OnPass: func(r *Result, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else {
					extended += r.Extended
				}
			},
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	size := int64(200 << 10)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(30 * time.Millisecond) {
		if _, err := ReadIndex(dir); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no first index")
		}
	}
	for step := 1; step <= 3; step++ {
		g := randBytes(uint64(10+step), 30<<10+step)
		appendTo(t, p, g, old.Add(time.Duration(step)*time.Second))
		size += int64(len(g))
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(30 * time.Millisecond) {
			if x, err := ReadIndex(dir); err == nil && len(x.Entries) == 2 && x.Entries[1].Size == size {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d: the index does not show the growth", step)
			}
		}
		checkFresh(t, dir, rel, false, step)
	}
	// OnPass runs after the index is in place: wait for the last one.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(30 * time.Millisecond) {
		mu.Lock()
		n := extended
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 || extended != 3 {
		t.Fatalf("%d growths read from the old end, want 3; errors: %v", extended, errs)
	}
}
