// Package backoff holds the retry pauses shared by the transports
// (httpsource, sftpsource): exponential backoff with jitter, and a sleep
// that a context ends.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay returns the pause before retry number failures (from 1): base
// doubled per retry up to limit, with jitter between half and all of it so
// that parallel callers spread out.
func Delay(base, limit time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d or until ctx is done, and then returns its cause.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
