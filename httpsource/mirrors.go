package httpsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// Mirrors reads ranges from several copies of the same file. Each
// ReadRanges call goes to the healthy source with the fewest calls in
// flight (in turn when tied), so concurrent calls spread over all of them.
// A source that fails (after its own retries), or whose data the callback
// rejects with an error wrapping source.ErrCorrupt, is dropped for good, and
// the ranges of the call not yet delivered are read from another source.
// Mirrors is safe for concurrent use.
type Mirrors struct {
	srcs []source.RangeSource

	mu       sync.Mutex
	inflight []int
	failed   []error // why each source was dropped; nil while healthy
	turn     int
}

// NewMirrors returns a Mirrors reading from srcs; nil sources are ignored.
func NewMirrors(srcs ...source.RangeSource) *Mirrors {
	m := &Mirrors{}
	for _, s := range srcs {
		if s != nil {
			m.srcs = append(m.srcs, s)
		}
	}
	m.inflight = make([]int, len(m.srcs))
	m.failed = make([]error, len(m.srcs))
	return m
}

// MaxRanges implements source.RangeLimiter: the fewest ranges per request
// among the healthy sources that say how many they carry, or
// DefaultMaxRanges when none says.
func (m *Mirrors) MaxRanges() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for i, s := range m.srcs {
		if l, ok := s.(source.RangeLimiter); ok && m.failed[i] == nil {
			if k := l.MaxRanges(); n == 0 || k < n {
				n = k
			}
		}
	}
	if n == 0 {
		return DefaultMaxRanges
	}
	return n
}

// Healthy returns the number of sources not dropped.
func (m *Mirrors) Healthy() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, err := range m.failed {
		if err == nil {
			n++
		}
	}
	return n
}

// ReadRanges implements source.RangeSource. When every source has been
// dropped it returns an error naming each source's failure; errors.Is
// looks through all of them.
func (m *Mirrors) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	delivered := 0
	for delivered < len(ranges) {
		i, ok := m.pick()
		if !ok {
			return m.allFailed()
		}
		var fnErr error
		err := m.srcs[i].ReadRanges(ctx, ranges[delivered:], func(r source.Range, data io.Reader) error {
			if err := fn(r, data); err != nil {
				fnErr = err
				return err
			}
			delivered++
			return nil
		})
		m.release(i)
		switch {
		case err == nil:
			return nil
		case fnErr != nil && !errors.Is(fnErr, source.ErrCorrupt):
			return err
		case ctx.Err() != nil:
			return err
		case fnErr != nil:
			m.drop(i, fmt.Errorf("%s: delivered bad data: %w", m.name(i), fnErr))
		default:
			if name := m.name(i); !strings.Contains(err.Error(), name) {
				err = fmt.Errorf("%s: %w", name, err)
			}
			m.drop(i, err)
		}
	}
	return nil
}

func (m *Mirrors) name(i int) string {
	if s, ok := m.srcs[i].(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("mirror %d", i)
}

// pick chooses a healthy source and counts the call in flight.
func (m *Mirrors) pick() (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	best := -1
	for k := range m.srcs {
		i := (m.turn + k) % len(m.srcs)
		if m.failed[i] == nil && (best < 0 || m.inflight[i] < m.inflight[best]) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	m.turn = (best + 1) % len(m.srcs)
	m.inflight[best]++
	return best, true
}

func (m *Mirrors) release(i int) {
	m.mu.Lock()
	m.inflight[i]--
	m.mu.Unlock()
}

func (m *Mirrors) drop(i int, err error) {
	m.mu.Lock()
	if m.failed[i] == nil {
		m.failed[i] = err
	}
	m.mu.Unlock()
}

func (m *Mirrors) allFailed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.srcs) == 0 {
		return errors.New("httpsource: no mirrors")
	}
	return &mirrorsError{errs: append([]error(nil), m.failed...)}
}

// mirrorsError reports that every mirror was dropped.
type mirrorsError struct{ errs []error }

func (e *mirrorsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "httpsource: all %d mirrors failed", len(e.errs))
	for _, err := range e.errs {
		b.WriteString("; ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *mirrorsError) Unwrap() []error { return e.errs }
