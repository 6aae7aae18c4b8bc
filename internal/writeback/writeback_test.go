package writeback

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

func TestStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("zsyncpipe"), 100000)
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := Start(f, 0, 0); err != nil {
		t.Fatalf("Start(whole file): %v", err)
	}
	if err := Start(f, 4096, 8192); err != nil {
		t.Fatalf("Start(range): %v", err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file changed by the hint: %v", err)
	}
	err = Start(f, 0, 0)
	if runtime.GOOS == "linux" && err == nil {
		t.Error("Start on a closed file: no error")
	}
	if runtime.GOOS != "linux" && err != nil {
		t.Errorf("Start where it does nothing: %v", err)
	}
}

// waitFor polls cond until it holds or a few seconds have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEvery(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := newEvery(f, 1000, true, false)
	e.Wrote(999)
	time.Sleep(20 * time.Millisecond)
	if n := e.hints.Load(); n != 0 {
		t.Fatalf("%d hints before the mark", n)
	}
	e.Wrote(1)
	waitFor(t, "the hint at the mark", func() bool { return e.hints.Load() == 1 })
	// Concurrent writers: at most one hint per 1000 bytes (marks passed
	// while a hint is given are taken together), and at least one more.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				e.Wrote(10)
			}
		})
	}
	wg.Wait()
	waitFor(t, "a hint after the writers", func() bool { return e.hints.Load() >= 2 })
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := e.hints.Load(); n > 81 {
		t.Errorf("%d hints for 80000 bytes written at a mark of 1000", n)
	}
	if n := e.flushes.Load(); n != 0 {
		t.Errorf("%d flushes by an Every that only gives hints", n)
	}
	e.Wrote(5000) // after Close: neither blocks nor panics
}

func TestEveryFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := newEvery(f, 1<<16, true, true)
	data := bytes.Repeat([]byte("zsyncpipe"), 1<<14)
	for off := 0; off < 1<<20; off += len(data) {
		if _, err := f.WriteAt(data, int64(off)); err != nil {
			t.Fatal(err)
		}
		e.Wrote(int64(len(data)))
	}
	waitFor(t, "a background flush", func() bool { return e.flushes.Load() >= 1 })
	if err := e.Close(); err != nil {
		t.Fatalf("Close after good flushes: %v", err)
	}
	if h, fl := e.hints.Load(), e.flushes.Load(); fl > h {
		t.Errorf("%d flushes for %d marks", fl, h)
	}
}

// A background flush that fails must not be lost: the next flush of the
// file may not report the error again, so Close returns it.
func TestEveryFlushError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEvery(f, 10, true, true)
	f.Close() // every flush now fails
	e.Wrote(10)
	waitFor(t, "the failing flush", func() bool { return e.flushes.Load() >= 1 })
	if err := e.Close(); err == nil {
		t.Fatal("Close after a failed background flush: no error")
	}
	if err := e.Close(); err == nil {
		t.Fatal("second Close: the error is gone")
	}
}

// NewEvery runs only where writeback can be started without waiting; it
// does nothing elsewhere.
func TestNewEvery(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := NewEvery(f, 10)
	e.Wrote(100)
	if osfile.HasWriteback {
		waitFor(t, "the flush", func() bool { return e.flushes.Load() >= 1 })
	} else {
		time.Sleep(20 * time.Millisecond)
		if n := e.hints.Load() + e.flushes.Load(); n != 0 {
			t.Errorf("%d hints and flushes where the system has no writeback hint", n)
		}
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkWriteEvery writes a 64 MiB file in 1 MiB positioned writes,
// hashing each chunk before it writes it (SHA-256, as bench's durable
// floor does: the writes come at the pace of work, not of memory), and
// flushes it, as a sync writes its result: with Every (hints and
// background flushes on a goroutine of their own) and without (only the
// final flush), and with hints only. The writer never waits for Every,
// so the difference is in the final flush.
func BenchmarkWriteEvery(b *testing.B) {
	const size, chunk = 64 << 20, 1 << 20
	data := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8}, chunk/8)
	for _, mode := range []string{"final-flush-only", "hints-every-8MiB", "hints-and-flushes-every-8MiB"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(size)
			path := filepath.Join(b.TempDir(), "f")
			for b.Loop() {
				f, err := os.Create(path)
				if err != nil {
					b.Fatal(err)
				}
				var e *Every
				switch mode {
				case "hints-every-8MiB":
					e = newEvery(f, 8<<20, osfile.HasWriteback, false)
				case "hints-and-flushes-every-8MiB":
					e = NewEvery(f, 8<<20)
				}
				h := sha256.New()
				for off := int64(0); off < size; off += chunk {
					h.Write(data)
					if _, err := f.WriteAt(data, off); err != nil {
						b.Fatal(err)
					}
					if e != nil {
						e.Wrote(chunk)
					}
				}
				if e != nil {
					if err := e.Close(); err != nil {
						b.Fatal(err)
					}
				}
				if err := osfile.Sync(f); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}

// NewHints gives hints at its marks where the system can, and never flushes.
func TestNewHints(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := NewHints(f, 100)
	e.Wrote(100)
	if osfile.HasWriteback {
		waitFor(t, "the hint at the mark", func() bool { return e.hints.Load() == 1 })
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := e.flushes.Load(); n != 0 {
		t.Errorf("%d flushes by NewHints", n)
	}
}
