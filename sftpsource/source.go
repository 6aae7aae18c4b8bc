package sftpsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"github.com/zsyncpipe/zsyncpipe/internal/backoff"
	"github.com/zsyncpipe/zsyncpipe/source"
)

// ErrChanged is wrapped by errors that report that the remote file's size
// or modification time is not what it was at the first read: the file was
// replaced or changed during the sync. It is source.ErrChanged, the error
// every transport uses.
var ErrChanged = source.ErrChanged

// requestOverhead estimates the SFTP bytes of one read beyond its data:
// the request (length 4, type 1, id 4, handle 4+4 with OpenSSH's 4-byte
// handles, offset 8, length 4) and the header of its answer (length 4,
// type 1, id 4, data length 4).
const requestOverhead = 29 + 13

// Stats counts the traffic of a Source.
type Stats struct {
	Calls      int64 // ReadRanges attempts, retries included
	Requests   int64 // SFTP read requests sent
	Overhead   int64 // SFTP framing of the requests and answers (estimated; SSH's own framing not counted)
	Ranges     int64 // ranges delivered
	Bytes      int64 // payload bytes delivered
	Retries    int64 // attempts made after a failed one
	Reconnects int64 // connection failures seen, each followed by a new connection
	Connects   int64 // SSH connections opened for this source's calls
}

// Source reads byte ranges of one remote file over SFTP. It implements
// source.RangeSource and is safe for concurrent use.
type Source struct {
	pool    *Pool
	private bool // the pool belongs to the source
	t       *target
	ep      *endpoint

	mu      sync.Mutex
	handles map[*session]*handle
	known   bool      // size and mtime below come from a stat
	size    int64     // size of the file at the first stat
	mtime   time.Time // modification time at the first stat

	calls, requests, ranges, bytes, retries, reconnects, connects atomic.Int64
}

// handle is the open file on one session, with its window of outstanding
// reads.
type handle struct {
	f   *sftp.File
	sem chan struct{} // one token per read in flight or not yet consumed
}

// New returns a Source for the file at rawURL,
// sftp://[user[:password]@]host[:port]/path, with a Pool of its own that
// Close closes. To share connections between files, use Pool.Source. It
// does not connect until the first read.
func New(rawURL string, opts Options) (*Source, error) {
	p := NewPool(opts)
	s, err := p.Source(rawURL)
	if err != nil {
		return nil, err
	}
	s.private = true
	return s, nil
}

// Source returns a Source for the file at rawURL that reads through the
// pool's connections. It does not connect until the first read.
func (p *Pool) Source(rawURL string) (*Source, error) {
	t, err := p.parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	ep, err := p.endpoint(t)
	if err != nil {
		return nil, err
	}
	return &Source{pool: p, t: t, ep: ep, handles: make(map[*session]*handle)}, nil
}

// String returns the URL of the file, without a password.
func (s *Source) String() string { return s.t.redacted }

// Stats returns the traffic counted so far.
func (s *Source) Stats() Stats {
	return Stats{
		Calls:      s.calls.Load(),
		Requests:   s.requests.Load(),
		Overhead:   s.requests.Load() * requestOverhead,
		Ranges:     s.ranges.Load(),
		Bytes:      s.bytes.Load(),
		Retries:    s.retries.Load(),
		Reconnects: s.reconnects.Load(),
		Connects:   s.connects.Load(),
	}
}

// Stat returns the size and modification time of the remote file, read
// from the server now. A file whose size or time differ from those of the
// first stat of the Source is reported as an error wrapping ErrChanged.
func (s *Source) Stat(ctx context.Context) (size int64, mtime time.Time, err error) {
	err = s.retry(ctx, func() (bool, error) {
		sess, h, err := s.open(ctx, s.ep.pick())
		if err != nil {
			return false, err
		}
		size, mtime, err = s.check(sess, h)
		return false, err
	})
	return size, mtime, err
}

// Close closes the file's handles, and the pool when the Source has its
// own (New). A server that does not answer the close within a few seconds
// has its connection closed.
func (s *Source) Close() error {
	s.mu.Lock()
	hs := s.handles
	s.handles = make(map[*session]*handle)
	s.mu.Unlock()
	var wg sync.WaitGroup
	for sess, h := range hs {
		if !sess.alive() {
			continue
		}
		done := make(chan struct{})
		wg.Go(func() {
			h.f.Close()
			close(done)
		})
		wg.Go(func() {
			t := time.NewTimer(abandonAfter)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				s.ep.drop(sess, fmt.Errorf("sftpsource: %s: close not answered", s))
			}
		})
	}
	wg.Wait()
	if s.private {
		return s.pool.Close()
	}
	return nil
}

// ReadRanges reads ranges, which must be sorted, non-empty and
// non-overlapping, and calls fn once per range, in order, with a reader of
// exactly r.Len() bytes. The reads of a call, cut into requests of
// Options.PacketSize, are kept outstanding up to Options.Requests at once
// per file and connection, so a long link stays full. Before the data of a
// call is delivered, the file's size and modification time are checked
// against the first ones seen. A dropped or stalled connection is opened
// again and the undelivered ranges read again, after a backoff. It returns
// fn's first error as is.
func (s *Source) ReadRanges(ctx context.Context, ranges []source.Range, fn func(source.Range, io.Reader) error) error {
	if err := source.CheckRanges(ranges); err != nil {
		return fmt.Errorf("sftpsource: %s: %w", s, err)
	}
	next := 0
	return s.retry(ctx, func() (bool, error) {
		before := next
		err := s.attempt(ctx, ranges, &next, fn)
		return next > before, err
	})
}

// retry runs attempt until it succeeds, fails for good, or fails more than
// Retries times in a row; an attempt that made progress starts the count
// again.
func (s *Source) retry(ctx context.Context, attempt func() (progress bool, err error)) error {
	failures := 0
	for {
		s.calls.Add(1)
		progress, err := attempt()
		if err == nil {
			return nil
		}
		var fe *fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		var pe *permanentError
		if errors.As(err, &pe) {
			return pe.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("sftpsource: %s: %w", s, context.Cause(ctx))
		}
		if progress {
			failures = 0
		}
		failures++
		if failures > s.pool.opts.Retries {
			return fmt.Errorf("sftpsource: %s: %w (gave up after %d attempts)", s, err, failures)
		}
		s.retries.Add(1)
		s.pool.opts.logf("%s: %v; retrying", s, err)
		if err := backoff.Sleep(ctx, backoff.Delay(s.pool.opts.Backoff, MaxBackoff, failures)); err != nil {
			return fmt.Errorf("sftpsource: %s: %w", s, err)
		}
	}
}

// open returns a live session of slot i and the file's handle on it.
func (s *Source) open(ctx context.Context, i int) (*session, *handle, error) {
	sess, dialed, err := s.ep.session(ctx, i)
	if err != nil {
		return nil, nil, err
	}
	if dialed {
		s.connects.Add(1)
	}
	s.mu.Lock()
	h := s.handles[sess]
	s.mu.Unlock()
	if h != nil {
		return sess, h, nil
	}
	f, err := sess.sftp.Open(s.t.path)
	if err != nil {
		return nil, nil, s.fail(sess, "open", err)
	}
	h = &handle{f: f, sem: make(chan struct{}, s.pool.opts.Requests)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.handles[sess]; old != nil { // opened beside us
		f.Close()
		return sess, old, nil
	}
	for o := range s.handles { // handles on ended sessions are dead
		if !o.alive() {
			delete(s.handles, o)
		}
	}
	s.handles[sess] = h
	return sess, h, nil
}

// fail classifies an error of an SFTP operation on sess: an answer of the
// server (no such file, permission denied, …) is final; anything else is
// a failure of the connection, which is dropped so that the next attempt
// opens a new one.
func (s *Source) fail(sess *session, op string, err error) error {
	var st *sftp.StatusError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &permanentError{fmt.Errorf("sftpsource: %s %s: %w", op, s, err)}
	case errors.Is(err, fs.ErrPermission):
		return &permanentError{fmt.Errorf("sftpsource: %s %s: %w", op, s, err)}
	case errors.As(err, &st) && st.FxCode() != sftp.ErrSSHFxConnectionLost && st.FxCode() != sftp.ErrSSHFxNoConnection:
		return &permanentError{fmt.Errorf("sftpsource: %s %s: %w", op, s, err)}
	}
	if why := sess.reason(); why != nil {
		err = why
	}
	s.reconnects.Add(1)
	s.ep.drop(sess, err)
	return fmt.Errorf("%s %s: %w", op, s, err)
}

// check stats the open file and compares its size and modification time
// with the first ones seen.
func (s *Source) check(sess *session, h *handle) (int64, time.Time, error) {
	fi, err := h.f.Stat()
	if err != nil {
		return 0, time.Time{}, s.fail(sess, "stat", err)
	}
	if !fi.Mode().IsRegular() {
		return 0, time.Time{}, &permanentError{fmt.Errorf("sftpsource: %s is not a regular file", s)}
	}
	size, mtime := fi.Size(), fi.ModTime()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		s.known, s.size, s.mtime = true, size, mtime
		return size, mtime, nil
	}
	if size != s.size || !mtime.Equal(s.mtime) {
		return 0, time.Time{}, &permanentError{fmt.Errorf("sftpsource: %s: %w: size %d and mtime %s, were %d and %s",
			s, ErrChanged, size, mtime.UTC().Format(time.RFC3339), s.size, s.mtime.UTC().Format(time.RFC3339))}
	}
	return size, mtime, nil
}

// fnError carries the callback's error through the retry loop.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// piece is one read request of a call.
type piece struct {
	off  int64
	buf  []byte
	n    int
	err  error
	done chan struct{}
}

var bufPool sync.Pool // *[]byte of Options.PacketSize

// attempt reads ranges[*next:] on one connection and delivers them, moving
// *next past each range delivered.
func (s *Source) attempt(ctx context.Context, ranges []source.Range, next *int, fn func(source.Range, io.Reader) error) error {
	sess, h, err := s.open(ctx, s.ep.pick())
	if err != nil {
		return err
	}
	// The stat goes out with the first reads; its answer is checked
	// before any data is delivered.
	statErr := make(chan error, 1)
	go func() {
		_, _, err := s.check(sess, h)
		statErr <- err
	}()

	psize := int64(s.pool.opts.PacketSize)
	stop := make(chan struct{})
	pieces := make(chan *piece, cap(h.sem))
	issued := make(chan struct{})
	go func() { // the issuer: requests in file order, as tokens allow
		defer close(issued)
		defer close(pieces)
		for _, r := range ranges[*next:] {
			for off := r.Start; off < r.End; off += psize {
				select {
				case h.sem <- struct{}{}:
				case <-stop:
					return
				case <-ctx.Done():
					return
				}
				p := &piece{off: off, done: make(chan struct{})}
				bp, _ := bufPool.Get().(*[]byte)
				if bp == nil || int64(cap(*bp)) < psize {
					b := make([]byte, psize)
					bp = &b
				}
				p.buf = (*bp)[:min(psize, r.End-off)]
				s.requests.Add(1)
				sess.begin()
				go func() {
					p.n, p.err = h.f.ReadAt(p.buf, p.off)
					sess.end()
					close(p.done)
				}()
				pieces <- p // never blocks: cap(pieces) = cap(h.sem)
			}
		}
	}()
	release := func(p *piece) {
		b := p.buf[:cap(p.buf)]
		bufPool.Put(&b)
		<-h.sem
	}
	rd := &pieceReader{ctx: ctx, pieces: pieces, release: release, await: func(ctx context.Context, p *piece) { s.await(ctx, sess, p) }}
	defer func() {
		close(stop)
		<-issued
		if rd.cur != nil {
			release(rd.cur)
		}
		for p := range pieces { // drain: wait for the requests still out
			s.await(ctx, sess, p)
			release(p)
		}
	}()

	select {
	case err := <-statErr:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}

	for *next < len(ranges) {
		r := ranges[*next]
		rd.left = r.Len()
		err := fn(r, rd)
		if rd.err != nil {
			return s.readError(sess, h, rd.err)
		}
		if err != nil {
			return &fnError{err}
		}
		if rd.left > 0 { // fn did not read it all
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return s.readError(sess, h, rd.err)
			}
		}
		s.ranges.Add(1)
		s.bytes.Add(r.Len())
		*next++
	}
	return nil
}

// abandonAfter is how long a cancelled call waits for its outstanding
// requests before it closes their connection.
const abandonAfter = 2 * time.Second

// await waits for the answer to p. When ctx is done and the server keeps
// it waiting, the connection is closed (which answers every request on it
// with an error), so that a cancelled call returns soon even from a server
// that stalls.
func (s *Source) await(ctx context.Context, sess *session, p *piece) {
	select {
	case <-p.done:
		return
	case <-ctx.Done():
	}
	t := time.NewTimer(abandonAfter)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		s.ep.drop(sess, fmt.Errorf("sftpsource: %s: requests abandoned after cancellation", s))
		<-p.done
	}
}

// readError classifies the failure of a read request.
//
// An end of file is ambiguous: the server answers SSH_FX_EOF for a read
// past the end of a file cut short, but pkg/sftp also returns io.EOF when
// the request could not be written because the connection had just gone
// (the SSH channel's Write says io.EOF once the peer has closed it). A
// fresh stat of the handle tells them apart: it fails on a dead
// connection (a retry on a new one follows) and shows the new size or
// mtime of a changed file (which fails for good). An end of file from an
// unchanged file is treated as a failure of the connection, so the
// retries bound it.
func (s *Source) readError(sess *session, h *handle, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if _, _, cerr := s.check(sess, h); cerr != nil {
			var pe *permanentError
			if errors.As(cerr, &pe) && errors.Is(cerr, ErrChanged) {
				return &permanentError{fmt.Errorf("%w: it ends before the bytes asked for", pe.err)}
			}
			return cerr
		}
	}
	return s.fail(sess, "read", err)
}

// pieceReader reads the data of consecutive pieces, left bytes at most.
type pieceReader struct {
	ctx     context.Context
	pieces  <-chan *piece
	release func(*piece)
	await   func(context.Context, *piece)
	cur     *piece
	pos     int
	left    int64
	err     error
}

func (r *pieceReader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.left <= 0 {
		return 0, io.EOF
	}
	if r.cur == nil {
		p, ok := <-r.pieces
		if !ok {
			r.err = io.ErrUnexpectedEOF
			if r.ctx.Err() != nil {
				r.err = r.ctx.Err()
			}
			return 0, r.err
		}
		r.await(r.ctx, p)
		if p.err == nil && p.n < len(p.buf) {
			p.err = io.ErrUnexpectedEOF
		}
		if p.err != nil {
			r.err = p.err
			r.release(p)
			return 0, r.err
		}
		r.cur, r.pos = p, 0
	}
	n := copy(b[:min(int64(len(b)), r.left)], r.cur.buf[r.pos:])
	r.pos += n
	r.left -= int64(n)
	if r.pos == len(r.cur.buf) {
		r.release(r.cur)
		r.cur = nil
	}
	return n, nil
}

// File is a whole file fetched by Download.
type File struct {
	// Body is the content; nil when NotModified.
	Body []byte
	// ModTime is the file's modification time on the server.
	ModTime time.Time
	// NotModified reports that the file is not newer than the
	// ifModifiedSince given to Download.
	NotModified bool
}

// Download reads the whole small file at rawURL (a control file) through
// the pool's connections. When ifModifiedSince is not zero and the file's
// modification time is not after it (to the second), it returns a File with
// NotModified set and no body. Files larger than MaxDownloadSize are an
// error.
func (p *Pool) Download(ctx context.Context, rawURL string, ifModifiedSince time.Time) (*File, error) {
	s, err := p.Source(rawURL)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out *File
	err = s.retry(ctx, func() (bool, error) {
		sess, h, err := s.open(ctx, s.ep.pick())
		if err != nil {
			return false, err
		}
		fi, err := h.f.Stat()
		if err != nil {
			return false, s.fail(sess, "stat", err)
		}
		if !fi.Mode().IsRegular() {
			return false, &permanentError{fmt.Errorf("sftpsource: %s is not a regular file", s)}
		}
		f := &File{ModTime: fi.ModTime()}
		if !ifModifiedSince.IsZero() && !f.ModTime.Truncate(time.Second).After(ifModifiedSince.Truncate(time.Second)) {
			f.NotModified = true
			out = f
			return false, nil
		}
		if fi.Size() > MaxDownloadSize {
			return false, &permanentError{fmt.Errorf("sftpsource: %s: %d bytes exceed the limit of %d", s, fi.Size(), MaxDownloadSize)}
		}
		body := make([]byte, fi.Size()+1) // one more: a file that grew is seen
		n, err := h.f.ReadAt(body, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, s.fail(sess, "read", err)
		}
		if int64(n) != fi.Size() {
			return false, fmt.Errorf("sftpsource: %s: read %d bytes, stat said %d", s, n, fi.Size())
		}
		f.Body = body[:n]
		s.bytes.Add(int64(n))
		out = f
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Compile-time check.
var _ source.RangeSource = (*Source)(nil)
