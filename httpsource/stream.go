package httpsource

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/zsyncpipe/zsyncpipe/source"
)

// streamLinger is how long the whole-file stream stays open, paused, when
// no call waits for a range: the fetch stage starts its next call as soon as
// one ends, and that call's ranges lie further on in the same body. It is
// at most half the IdleTimeout, so that the pause does not look like a
// stall.
const streamLinger = 2 * time.Second

// bodyStream serves the ranges of every concurrent ReadRanges call from one
// whole-file body, for a server that ignores Range headers: the body is read
// once, front to back, each range handed to the call that wants it as the
// body passes it, and reading stops when no call wants anything further.
// Only a range asked for after the body went past it makes a new request.
type bodyStream struct {
	s *Source

	mu      sync.Mutex
	tickets []*ticket
	running bool
	added   chan struct{} // signalled (non-blocking) when a ticket is added
	stop    chan struct{} // closed by Source.CloseIdleConnections: a lingering stream ends

	// The ranges announced by Expect, sorted, and which of them the
	// stream has handed over: the stream does not pass an expected range
	// whose call has not registered yet.
	expected []source.Range
	handed   []bool
}

// Expect implements source.Expecter: the whole-file stream, if the server
// turns out to ignore ranges, waits for the calls of these ranges rather
// than read past them and start again for them.
func (s *Source) Expect(ranges []source.Range) {
	st := s.stream
	st.mu.Lock()
	defer st.mu.Unlock()
	st.expected = slices.Clone(ranges)
	st.handed = make([]bool, len(ranges))
}

// markHanded records that the range r went to its call, from the stream
// or from a range request.
func (st *bodyStream) markHanded(r source.Range) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if i, ok := slices.BinarySearchFunc(st.expected, r.Start, func(e source.Range, start int64) int { return cmp.Compare(e.Start, start) }); ok {
		st.handed[i] = true
	}
}

// unclaimed reports whether an expected range that has not been handed
// over starts in [pos, end). No registered call waits for it when no call
// is behind pos: pick chose the first range at or after pos.
func (st *bodyStream) unclaimed(pos, end int64) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	i, _ := slices.BinarySearchFunc(st.expected, pos, func(e source.Range, p int64) int { return cmp.Compare(e.Start, p) })
	for ; i < len(st.expected) && st.expected[i].Start < end; i++ {
		if !st.handed[i] {
			return true
		}
	}
	return false
}

// ticket is one call's claim on the stream: its undelivered ranges.
type ticket struct {
	c    *call
	next int           // first range of c.ranges not yet delivered; guarded by bodyStream.mu
	give chan *handoff // the stream hands over the next range
	fail chan error    // the stream failed before delivering everything
	gone chan struct{} // closed when the call stops waiting
	once sync.Once
}

// handoff lends the body, positioned at r.Start, to the call for one range;
// the call answers on done when it has consumed it.
type handoff struct {
	r    source.Range
	body io.Reader
	done chan error // nil: delivered; a *fnError or a body error otherwise
}

func newBodyStream(s *Source) *bodyStream {
	return &bodyStream{s: s, added: make(chan struct{}, 1), stop: make(chan struct{})}
}

// serve delivers the undelivered ranges of c from the shared stream. resp,
// if not nil, is a 200 answer with the whole file that the caller received
// (finish releases it): it becomes the stream when none is running and is
// dropped otherwise. registered, if not nil, is called once the call
// waits on the stream.
func (st *bodyStream) serve(ctx context.Context, c *call, resp *http.Response, finish, registered func()) error {
	t := &ticket{c: c, next: c.next, give: make(chan *handoff), fail: make(chan error, 1), gone: make(chan struct{})}
	st.mu.Lock()
	st.tickets = append(st.tickets, t)
	start := !st.running
	st.running = true
	st.mu.Unlock()
	if registered != nil {
		registered()
	}
	select {
	case st.added <- struct{}{}:
	default:
	}
	if start {
		go st.run(context.WithoutCancel(ctx), resp, finish)
	} else if resp != nil {
		finish() // another body serves everyone
	}
	defer st.leave(t)
	for c.next < len(c.ranges) {
		select {
		case h := <-t.give:
			err := st.s.handOver(c, h)
			h.done <- err
			if err != nil {
				return err
			}
		case err := <-t.fail:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// handOver calls c's callback for the range of h, reading the stream's
// body, and accounts for it. The range is read to its end even when the
// callback fails, so that the body stays positioned for the other calls.
func (s *Source) handOver(c *call, h *handoff) error {
	er := &exactReader{r: h.body, n: h.r.Len()}
	err := c.fn(h.r, er)
	if er.err == nil && er.n > 0 {
		_, _ = io.Copy(io.Discard, er)
	}
	switch {
	case er.err != nil:
		return s.bodyError(er.err)
	case err != nil:
		return &fnError{err}
	}
	s.payloadBytes.Add(h.r.Len())
	s.stream.markHanded(h.r)
	c.next++
	return nil
}

// leave removes t from the stream.
func (st *bodyStream) leave(t *ticket) {
	t.once.Do(func() { close(t.gone) })
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, o := range st.tickets {
		if o == t {
			st.tickets = append(st.tickets[:i], st.tickets[i+1:]...)
			break
		}
	}
}

// pick returns the ticket whose next range starts first at or after pos,
// and whether any ticket waits for a range before pos.
func (st *bodyStream) pick(pos int64) (best *ticket, behind bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, t := range st.tickets {
		if t.next >= len(t.c.ranges) {
			continue
		}
		r := t.c.ranges[t.next]
		if r.Start < pos {
			behind = true
			continue
		}
		if best == nil || r.Start < best.c.ranges[best.next].Start {
			best = t
		}
	}
	return best, behind
}

// failAll tells every waiting call that the stream failed, and ends it.
func (st *bodyStream) failAll(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, t := range st.tickets {
		select {
		case t.fail <- err:
		default:
		}
	}
	st.tickets = nil
	st.running = false
}

// linger returns how long the stream may pause: streamLinger, at most
// half the IdleTimeout.
func (st *bodyStream) linger() time.Duration {
	linger := streamLinger
	if idle := st.s.st.idleTimeout; idle > 0 {
		linger = min(linger, idle/2)
	}
	return linger
}

// await waits up to the linger time for a new ticket, and reports whether
// one came.
func (st *bodyStream) await() bool {
	timer := time.NewTimer(st.linger())
	defer timer.Stop()
	select {
	case <-st.added:
		return true
	case <-timer.C:
	case <-st.stop:
	}
	return false
}

// idle waits up to the linger time for a new ticket. It reports false,
// having marked the stream as stopped, when none came.
func (st *bodyStream) idle() bool {
	if st.await() {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.tickets) > 0 {
		return true
	}
	st.running = false
	return false
}

// run reads whole-file bodies and hands each waiting range to its call, in
// file order, until no call waits.
func (st *bodyStream) run(ctx context.Context, resp *http.Response, finish func()) {
	var pos int64
	release := func() {
		if finish != nil {
			finish()
		}
		resp, finish, pos = nil, nil, 0
	}
	defer release()
	for {
		st.s.settle()
		t, behind := st.pick(pos)
		if t == nil {
			if behind {
				release() // start again from the beginning
				continue
			}
			if !st.idle() {
				return
			}
			continue
		}
		if resp == nil {
			var err error
			if resp, finish, err = st.s.wholeFile(ctx); err != nil {
				st.failAll(err)
				return
			}
		}
		st.mu.Lock()
		r := t.c.ranges[t.next]
		st.mu.Unlock()
		// The call of an expected range before r has not registered yet:
		// the calls start in file order but reach the stream in any
		// order. Passing its range would cost a second read of the file
		// up to it.
		if !behind && st.unclaimed(pos, r.Start) && st.await() {
			continue
		}
		if skip := r.Start - pos; skip > 0 {
			if n, err := io.CopyN(io.Discard, resp.Body, skip); err != nil {
				st.failAll(st.s.bodyError(fmt.Errorf("body ends after %d bytes of a %d-byte gap: %w", pos+n, skip, noEOF(err))))
				return
			}
		}
		h := &handoff{r: r, body: resp.Body, done: make(chan error, 1)}
		select {
		case t.give <- h:
		case <-t.gone:
			// The call gave up: the body is where it was.
			pos = r.Start
			continue
		}
		err := <-h.done
		var fe *fnError
		switch {
		case err == nil:
			st.mu.Lock()
			t.next++
			st.mu.Unlock()
			pos = r.End
		case errors.As(err, &fe):
			// The caller's own failure: it leaves, and the body is at the
			// end of its range.
			st.leave(t)
			st.markHanded(r)
			pos = r.End
		default:
			st.failAll(err)
			return
		}
	}
}

// settleWait bounds how long the stream waits for range requests in flight
// to be answered before it reads on.
const settleWait = 2 * time.Second

// settle waits, up to settleWait, until no range request is waiting for its
// answer: sent before the server was known to ignore ranges, such a request
// will be answered with the whole file and join the stream, and the stream
// must not have gone past its ranges by then.
func (s *Source) settle() {
	deadline := time.Now().Add(settleWait)
	for s.sending.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

// wholeFile asks for the whole file, without a Range header, and checks that
// the answer is a 200 from the same version of the file.
func (s *Source) wholeFile(ctx context.Context) (*http.Response, func(), error) {
	req, err := http.NewRequest(http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", s, err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, finish, err := s.do(ctx, req, s.st.idleTimeout)
	if err != nil {
		return nil, nil, err
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		if err := s.checkValidators(resp, resp.ContentLength); err != nil {
			finish()
			return nil, nil, err
		}
		return resp, finish, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		err = s.transient(resp, s.statusError(resp))
	default:
		err = s.statusError(resp)
	}
	finish()
	return nil, nil, err
}
