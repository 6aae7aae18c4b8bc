package indexer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWatchConverges creates, grows, renames and deletes files and
// directories under a running Watch and checks that the index matches the
// tree within a bound after each step.
func TestWatchConverges(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "start/one", randBytes(1, 50<<10))
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu     sync.Mutex
		passes int
		errs   []error
	)
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, dir, Options{
			NoSync: true,
			Settle: 200 * time.Millisecond,
			Rescan: time.Hour, // events, not the rescan, must do it
			OnPass: func(_ *Result, err error) {
				mu.Lock()
				passes++
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			},
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("passes failed: %v", errs)
		}
	}()
	const bound = 10 * time.Second
	converge := func(step string) {
		t.Helper()
		deadline := time.Now().Add(bound)
		var m string
		for time.Now().Before(deadline) {
			if m = mismatch(t, dir); m == "" {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: no convergence within %v: %s", step, bound, m)
	}
	converge("start")
	put(t, dir, "new/deep/er/file.bin", randBytes(2, 70<<10))
	put(t, dir, "new/small", []byte("s"))
	converge("create")

	// A file that grows in steps, then stops.
	f, err := os.OpenFile(filepath.Join(dir, "new", "log"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		f.Write(randBytes(uint64(10+i), 8<<10))
		time.Sleep(60 * time.Millisecond)
	}
	f.Close()
	converge("grow")
	if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "renamed")); err != nil {
		t.Fatal(err)
	}
	converge("rename a directory")
	if err := os.Rename(filepath.Join(dir, "start", "one"), filepath.Join(dir, "renamed", "one")); err != nil {
		t.Fatal(err)
	}
	put(t, dir, "renamed/deep/er/file.bin", randBytes(3, 90<<10))
	converge("rename and change files")
	if err := os.RemoveAll(filepath.Join(dir, "renamed")); err != nil {
		t.Fatal(err)
	}
	converge("delete")
	// The control files of removed files go right after the new index.
	for deadline := time.Now().Add(bound); ; time.Sleep(20 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(dir, ".zsyncpipe", "renamed"))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control files of deleted files remain: %v", err)
		}
	}
}

// TestWatchRescan: without any event, the periodic rescan still runs
// passes, and a change that no event reported (made through a directory
// that is not watched: the walker hides it until then) is picked up.
func TestWatchRescan(t *testing.T) {
	dir := t.TempDir()
	put(t, dir, "hidden/f", []byte("one"))
	var (
		mu     sync.Mutex
		passes int
		show   bool
	)
	walker := func(ctx context.Context, d string, emit func(Item) error) error {
		return WalkDir(ctx, d, func(it Item) error {
			mu.Lock()
			s := show
			mu.Unlock()
			if !s && strings.HasPrefix(it.Path, "hidden") {
				return nil // not walked, so not watched either
			}
			return emit(it)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, dir, Options{NoSync: true, Settle: 10 * time.Millisecond, Rescan: 100 * time.Millisecond, Walk: walker,
			OnPass: func(*Result, error) { mu.Lock(); passes++; mu.Unlock() }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	show = true
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := mismatch(t, dir); m == "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the rescan did not pick up the change: %s", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if passes < 3 {
		t.Fatalf("%d passes, want several from the rescan", passes)
	}
}
