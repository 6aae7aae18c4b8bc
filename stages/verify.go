package stages

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/cpus"
)

// ErrMismatch is wrapped by Verify's error when the data does not match the
// control file's whole-file hash or length.
var ErrMismatch = errors.New("whole-file checksum mismatch")

// ErrNoFileHash is returned by Verify when the control file carries no
// whole-file hash, so only the block hashes vouch for the result.
var ErrNoFileHash = errors.New("control file has no whole-file hash")

// Verify reads the rebuilt target from r and checks its length and the
// control file's whole-file hashes (SHA-1 and/or SHA-256).
func Verify(ctx context.Context, r io.Reader, h *control.Header) error {
	fh := newFileHashes(h)
	n, err := io.Copy(fh, &ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("verify: read output: %w", err)
	}
	if n != h.Length {
		return fmt.Errorf("verify: output has %d bytes, want %d: %w", n, h.Length, ErrMismatch)
	}
	return fh.check()
}

// fileHashes computes the whole-file hashes a control file carries.
type fileHashes struct {
	hashes []hash.Hash
	want   [][]byte
	names  []string
}

func newFileHashes(h *control.Header) *fileHashes {
	fh := &fileHashes{}
	if h.SHA256 != nil {
		fh.hashes, fh.want, fh.names = append(fh.hashes, sha256.New()), append(fh.want, h.SHA256), append(fh.names, "SHA-256")
	}
	if h.SHA1 != nil {
		fh.hashes, fh.want, fh.names = append(fh.hashes, sha1.New()), append(fh.want, h.SHA1), append(fh.names, "SHA-1")
	}
	return fh
}

// Write feeds p to every hash.
func (fh *fileHashes) Write(p []byte) (int, error) {
	for _, hh := range fh.hashes {
		hh.Write(p)
	}
	return len(p), nil
}

// check compares the hashes with the control file's. It returns
// ErrNoFileHash when the control file has none.
func (fh *fileHashes) check() error {
	if len(fh.hashes) == 0 {
		return ErrNoFileHash
	}
	for i, hh := range fh.hashes {
		if got := hh.Sum(nil); !bytes.Equal(got, fh.want[i]) {
			return fmt.Errorf("verify: %s is %x, want %x: %w", fh.names[i], got, fh.want[i], ErrMismatch)
		}
	}
	return nil
}

// verifyWindow is the most a PrefixVerifier reads at once, per worker.
const verifyWindow = 64 << 10

// windowPool holds read buffers of verifyWindow bytes: a mirror verifies
// thousands of files, each with a buffer per worker, and took 7 MB of new
// memory per run for them before (docs/trees-measurements.md, "Where it
// stands: twentieth session"). Verify gives a verifier's back.
var windowPool = sync.Pool{New: func() any { b := make([]byte, verifyWindow); return &b }}

// verifyPiece is the most one worker hashes of a span before it looks for
// the span with the most to do again.
const verifyPiece = 4 << 20

// PrefixVerifier computes the whole-file hashes of an output while it is
// being written: it follows the contiguous prefix of blocks the Patcher has
// written and hashes each piece as soon as it is complete, so that the
// serial whole-file hash overlaps the scan and the downloads instead of
// following them.
//
// When the control file carries a SHA-256 hash chain (Header.SHA256Chain)
// and no SHA-1, the output is checked as independent spans instead, each
// from its own chain state and following its own written prefix, several
// at once: the hash no longer waits, serially, for the first missing block
// and then everything after it.
type PrefixVerifier struct {
	r       io.ReaderAt
	h       *control.Header
	pt      *Patcher
	spans   []*vspan
	chained bool
	workers int
	bufs    []*[]byte // a read buffer per worker, from windowPool
	hashed  atomic.Int64
	busy    atomic.Int64 // nanoseconds spent reading and hashing, summed over workers
	waited  atomic.Int64 // nanoseconds Run waited for more of the output to be written
	failMu  sync.Mutex
	failed  error // a span of the chain that did not arrive at its state
}

// vspan is a piece of the output hashed from its own starting state.
type vspan struct {
	index      int
	start, end int64
	pos        int64       // the next byte to hash
	fh         *fileHashes // its hashes; the last span's are checked against the control file
	working    bool        // a worker holds it (Step's lock)
}

// NewPrefixVerifier returns a verifier reading the output through r as pt
// writes it.
func NewPrefixVerifier(r io.ReaderAt, h *control.Header, pt *Patcher) *PrefixVerifier {
	v := &PrefixVerifier{r: r, h: h, pt: pt, workers: cpus.Cores()}
	if c := h.SHA256Chain; c != nil && h.SHA256 != nil && h.SHA1 == nil && c.Spans(h.Length) == int64(len(c.States))+1 {
		v.chained = true
		for i := range c.Spans(h.Length) {
			sp := &vspan{index: int(i), start: i * c.Span, pos: i * c.Span, end: min((i+1)*c.Span, h.Length)}
			hh := sha256.New()
			if i > 0 && SetSHA256State(hh, c.States[i-1], sp.start) != nil {
				v.chained = false // cannot happen with crypto/sha256
				break
			}
			sp.fh = &fileHashes{hashes: []hash.Hash{hh}, want: [][]byte{h.SHA256}, names: []string{"SHA-256"}}
			v.spans = append(v.spans, sp)
		}
		if v.chained {
			return v
		}
	}
	v.spans = []*vspan{{end: h.Length, fh: newFileHashes(h)}}
	return v
}

// SetSHA256State makes a crypto/sha256 hash continue from a chain state
// taken after offset bytes (a multiple of 64).
func SetSHA256State(hh hash.Hash, state [32]byte, offset int64) error {
	b := make([]byte, 0, 4+32+64+8)
	b = append(b, "sha\x03"...)
	b = append(b, state[:]...)
	b = append(b, make([]byte, 64)...)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	u, ok := hh.(encoding.BinaryUnmarshaler)
	if !ok {
		return errors.New("sha256 state cannot be restored")
	}
	return u.UnmarshalBinary(b)
}

// SHA256State returns the chaining state of a crypto/sha256 hash that has
// consumed a multiple of 64 bytes: what a control.HashChain records.
func SHA256State(hh hash.Hash) ([32]byte, error) {
	var s [32]byte
	m, ok := hh.(encoding.BinaryAppender)
	if !ok {
		return s, errors.New("sha256 state cannot be read")
	}
	b, err := m.AppendBinary(make([]byte, 0, 4+32+64+8))
	if err != nil || len(b) < 36 {
		return s, fmt.Errorf("sha256 state: %w", err)
	}
	copy(s[:], b[4:36])
	return s, nil
}

// Workers returns how many goroutines Step hashes with: one for a serial
// hash, up to one per core for a hash chain.
func (v *PrefixVerifier) Workers() int { return max(1, min(v.workers, len(v.spans))) }

// Hashed returns how many bytes of the output have been hashed (with a
// hash chain, not all of them leading bytes). It may be called while Run
// runs.
func (v *PrefixVerifier) Hashed() int64 { return v.hashed.Load() }

// Busy returns the time spent reading and hashing the output so far,
// summed over the workers.
func (v *PrefixVerifier) Busy() time.Duration { return time.Duration(v.busy.Load()) }

// Waited returns the time Run has waited so far for more of the output to
// be written.
func (v *PrefixVerifier) Waited() time.Duration { return time.Duration(v.waited.Load()) }

// done reports whether every span is hashed.
func (v *PrefixVerifier) done() bool {
	for _, sp := range v.spans {
		if sp.pos != sp.end {
			return false
		}
	}
	return true
}

// Run hashes the output as it is written, until all of it is hashed or
// ctx is done.
func (v *PrefixVerifier) Run(ctx context.Context) error {
	for !v.done() {
		before := v.hashed.Load()
		if err := v.Step(0); err != nil {
			return err
		}
		if v.hashed.Load() == before && !v.done() {
			t0 := time.Now()
			select {
			case <-v.pt.Changed():
			case <-ctx.Done():
				return ctx.Err()
			}
			v.waited.Add(int64(time.Since(t0)))
		}
	}
	return nil
}

// Step hashes the written parts of the output not hashed yet, at most about
// limit bytes of them when limit is positive, and returns without waiting
// for more. A pipeline stage that learns of written blocks from its input
// calls it for each item (with a limit, so that it never holds up the
// stages before it for long); Run calls it whenever the Patcher reports a
// change. With a hash chain several spans are hashed at once, on up to
// Workers goroutines that Step waits for. Step must not be called
// concurrently with itself or Run.
func (v *PrefixVerifier) Step(limit int64) error {
	bs := int64(v.h.Blocksize)
	if len(v.spans[0].fh.hashes) == 0 {
		// Nothing to hash: the verifier only follows the writes.
		sp := v.spans[0]
		for sp.pos < sp.end && v.pt.Done(sp.pos/bs) {
			sp.pos = min(sp.pos+bs, sp.end)
		}
		v.hashed.Store(sp.pos)
		return nil
	}
	budget := limit
	if budget <= 0 {
		budget = math.MaxInt64
	}
	var mu sync.Mutex
	next := 0
	// take reserves the next piece to hash: of the spans no worker holds,
	// the first from next on with written bytes after its position.
	take := func() (*vspan, int64) {
		mu.Lock()
		defer mu.Unlock()
		for k := range v.spans {
			i := (next + k) % len(v.spans)
			sp := v.spans[i]
			if sp.working || sp.pos == sp.end || budget <= 0 {
				continue
			}
			stop := sp.pos + min(sp.end-sp.pos, verifyPiece, budget)
			end := sp.pos
			for end < stop && v.pt.Done(end/bs) {
				end = min(end+bs, sp.end)
			}
			if end > sp.pos {
				sp.working = true
				next = i + 1
				budget -= end - sp.pos
				return sp, end
			}
		}
		return nil, 0
	}
	release := func(sp *vspan) {
		mu.Lock()
		sp.working = false
		mu.Unlock()
	}
	work := func(w int) error {
		if v.bufs[w] == nil {
			v.bufs[w] = windowPool.Get().(*[]byte)
		}
		for {
			sp, end := take()
			if sp == nil {
				return nil
			}
			t0 := time.Now()
			err := v.hash(sp, end, *v.bufs[w])
			v.busy.Add(int64(time.Since(t0)))
			if err == nil && sp.pos == sp.end {
				err = v.finishSpan(sp)
			}
			release(sp)
			if err != nil {
				return err
			}
		}
	}
	workers := v.Workers()
	if len(v.bufs) < workers {
		v.bufs = append(v.bufs, make([]*[]byte, workers-len(v.bufs))...)
	}
	if workers == 1 {
		return work(0)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { errs[w] = work(w) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// hash feeds bytes [sp.pos, to) of the output to the span's hashes.
func (v *PrefixVerifier) hash(sp *vspan, to int64, buf []byte) error {
	for sp.pos < to {
		chunk := buf[:min(to-sp.pos, int64(len(buf)))]
		if _, err := v.r.ReadAt(chunk, sp.pos); err != nil && !(errors.Is(err, io.EOF) && sp.pos+int64(len(chunk)) == v.h.Length) {
			return fmt.Errorf("verify: read output at %d: %w", sp.pos, err)
		}
		sp.fh.Write(chunk)
		sp.pos += int64(len(chunk))
		v.hashed.Add(int64(len(chunk)))
	}
	return nil
}

// finishSpan checks a fully hashed span of a chain against the chain's
// state at its end, and records a mismatch for Verify; the last span (and
// a serial hash) is checked by Verify.
func (v *PrefixVerifier) finishSpan(sp *vspan) error {
	if !v.chained || sp.index == len(v.spans)-1 {
		return nil
	}
	got, err := SHA256State(sp.fh.hashes[0])
	if err != nil {
		return err
	}
	if want := v.h.SHA256Chain.States[sp.index]; got != want {
		// Spans finish on different workers: keep one mismatch.
		err := fmt.Errorf("verify: SHA-256 of bytes %d to %d ends in state %x, the hash chain says %x: %w",
			sp.start, sp.end, got, want, ErrMismatch)
		v.failedOnce(err)
	}
	return nil
}

// failedOnce records the first mismatch of a chain.
func (v *PrefixVerifier) failedOnce(err error) {
	v.failMu.Lock()
	defer v.failMu.Unlock()
	if v.failed == nil {
		v.failed = err
	}
}

// Verify compares the hashes once the whole output is hashed. It returns
// ErrNoFileHash when the control file has no whole-file hash.
func (v *PrefixVerifier) Verify() error {
	v.releaseBufs()
	if !v.done() {
		return fmt.Errorf("verify: only %d of %d bytes hashed", v.hashed.Load(), v.h.Length)
	}
	if v.failed != nil {
		return v.failed
	}
	return v.spans[len(v.spans)-1].fh.check()
}

// releaseBufs gives the read buffers back to windowPool (a later Step
// takes new ones).
func (v *PrefixVerifier) releaseBufs() {
	for w, b := range v.bufs {
		if b != nil {
			windowPool.Put(b)
			v.bufs[w] = nil
		}
	}
}

// ctxReader stops a long read when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
