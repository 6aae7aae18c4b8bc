package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	for _, c := range []struct {
		failures int
		lo, hi   time.Duration
	}{{1, 50, 100}, {2, 100, 200}, {3, 200, 400}, {10, 250, 500}} {
		for range 50 {
			if d := Delay(100, 500, c.failures); d < c.lo || d > c.hi {
				t.Fatalf("Delay(100, 500, %d) = %d, want [%d, %d]", c.failures, d, c.lo, c.hi)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	why := errors.New("stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(why)
	if err := Sleep(ctx, time.Hour); err != why {
		t.Fatalf("Sleep after cancel: %v", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(0) after cancel: %v", err)
	}
}
