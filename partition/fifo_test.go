//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package partition

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// TestTargetFIFO: a FIFO at the target blocked the search for partitions
// the target holds (Begin) and CopyTarget in open(2), waiting for a
// writer. Neither opens it now: it holds no partition, and copying from it
// fails at once with ErrNotRegular.
func TestTargetFIFO(t *testing.T) {
	target := filepath.Join(t.TempDir(), "f")
	if err := syscall.Mkfifo(target, 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const psize = 64 << 10
	m := manifestOf(t, randomBytes(20, 2*psize), psize)
	a := New(target, Options{NoFsync: true})
	done := make(chan error, 1)
	go func() {
		v, err := a.Begin(ctx, m, time.Unix(100, 0))
		if err != nil {
			done <- fmt.Errorf("Begin: %w", err)
			return
		}
		c, err := v.Claim(ctx, 0)
		if err != nil {
			done <- fmt.Errorf("Claim: %w", err)
			return
		}
		defer c.Release()
		if c.Local {
			done <- errors.New("a FIFO's partition counted as held locally")
			return
		}
		if err := c.CopyTarget(); !errors.Is(err, osfile.ErrNotRegular) {
			done <- fmt.Errorf("CopyTarget from a FIFO = %v, want ErrNotRegular", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a FIFO at the target blocked the assembly in open(2)")
	}
}
