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
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
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
	var hashes []hash.Hash
	var want [][]byte
	var names []string
	if h.SHA256 != nil {
		hashes, want, names = append(hashes, sha256.New()), append(want, h.SHA256), append(names, "SHA-256")
	}
	if h.SHA1 != nil {
		hashes, want, names = append(hashes, sha1.New()), append(want, h.SHA1), append(names, "SHA-1")
	}
	ws := make([]io.Writer, len(hashes))
	for i, hh := range hashes {
		ws[i] = hh
	}
	n, err := io.Copy(io.MultiWriter(ws...), &ctxReader{ctx: ctx, r: r})
	if err != nil {
		return fmt.Errorf("verify: read output: %w", err)
	}
	if n != h.Length {
		return fmt.Errorf("verify: output has %d bytes, want %d: %w", n, h.Length, ErrMismatch)
	}
	for i, hh := range hashes {
		if got := hh.Sum(nil); !bytes.Equal(got, want[i]) {
			return fmt.Errorf("verify: %s is %x, want %x: %w", names[i], got, want[i], ErrMismatch)
		}
	}
	if len(hashes) == 0 {
		return ErrNoFileHash
	}
	return nil
}

// verifyWindow is the most a PrefixVerifier reads at once, per worker.
const verifyWindow = 256 << 10

// PrefixVerifier computes the whole-file hashes of an output while it is
// being written: it follows the contiguous prefix of blocks the Patcher has
// written and hashes each piece as soon as it is complete, so that the
// serial whole-file hash overlaps the scan and the downloads instead of
// following them.
//
// When the control file carries a SHA-256 hash chain (Header.SHA256Chain)
// and no SHA-1, the output is checked as independent spans instead, each
// from its own chain state, each following its own written prefix, several
// at once: the hash no longer waits, serially, for the first missing block
// and everything after it.
type PrefixVerifier struct {
	r       io.ReaderAt
	h       *control.Header
	pt      *Patcher
	spans   []*vspan
	chained bool
	want    [][]byte
	names   []string
	workers int
	hashed  atomic.Int64
	busy    atomic.Int64 // nanoseconds spent reading and hashing
	wait    time.Duration
	failed  error // a span whose chain state did not match; owned by Run
}

// vspan is a piece of the output hashed from its own starting state.
type vspan struct {
	index      int
	start, end int64
	pos        int64 // the next byte to hash; owned by the worker while working
	to         int64 // the end of the piece handed to the worker
	hashes     []hash.Hash
	working    bool
	err        error // the worker's result
}

// NewPrefixVerifier returns a verifier reading the output through r as pt
// writes it.
func NewPrefixVerifier(r io.ReaderAt, h *control.Header, pt *Patcher) *PrefixVerifier {
	v := &PrefixVerifier{r: r, h: h, pt: pt, workers: pipeline.DefaultWorkers()}
	if c := h.SHA256Chain; c != nil && h.SHA256 != nil && h.SHA1 == nil && c.Spans(h.Length) == int64(len(c.States))+1 {
		v.chained = true
		v.want, v.names = append(v.want, h.SHA256), append(v.names, "SHA-256")
		for i := range c.Spans(h.Length) {
			sp := &vspan{index: int(i), start: i * c.Span, end: min((i+1)*c.Span, h.Length)}
			sp.pos = sp.start
			hh := sha256.New()
			if i > 0 {
				if err := setSHA256State(hh, c.States[i-1], sp.start); err != nil {
					v.chained = false // cannot happen with crypto/sha256
					break
				}
			}
			sp.hashes = []hash.Hash{hh}
			v.spans = append(v.spans, sp)
		}
		if v.chained {
			return v
		}
		v.spans, v.want, v.names = nil, nil, nil
	}
	sp := &vspan{end: h.Length}
	if h.SHA256 != nil {
		sp.hashes, v.want, v.names = append(sp.hashes, sha256.New()), append(v.want, h.SHA256), append(v.names, "SHA-256")
	}
	if h.SHA1 != nil {
		sp.hashes, v.want, v.names = append(sp.hashes, sha1.New()), append(v.want, h.SHA1), append(v.names, "SHA-1")
	}
	v.spans = []*vspan{sp}
	return v
}

// setSHA256State makes a crypto/sha256 hash continue from a chain state
// taken after offset bytes (a multiple of 64).
func setSHA256State(hh hash.Hash, state [32]byte, offset int64) error {
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

// Workers returns how many goroutines Run hashes with: one for a serial
// hash, up to one per core for a hash chain.
func (v *PrefixVerifier) Workers() int { return max(1, min(v.workers, len(v.spans))) }

// Hashed returns how many bytes of the output have been hashed. It may be
// called while Run runs.
func (v *PrefixVerifier) Hashed() int64 { return v.hashed.Load() }

// Run hashes the output as it is written, until all of it is hashed or ctx
// is done.
func (v *PrefixVerifier) Run(ctx context.Context) error {
	if len(v.want) == 0 {
		for _, sp := range v.spans {
			sp.pos = sp.end // nothing to hash
		}
		v.hashed.Store(v.h.Length)
		return nil
	}
	workers := v.Workers()
	jobs := make(chan *vspan)
	done := make(chan *vspan)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, verifyWindow)
			for sp := range jobs {
				t := time.Now()
				sp.err = v.hash(sp, buf)
				v.busy.Add(int64(time.Since(t)))
				done <- sp
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	running := 0
	left := len(v.spans)
	for left > 0 {
		// Hand every idle worker the span with the most to hash.
		for running < workers {
			sp := v.next()
			if sp == nil {
				break
			}
			sp.working = true
			running++
			jobs <- sp
		}
		t := time.Now()
		select {
		case sp := <-done:
			running--
			sp.working = false
			if sp.err != nil {
				v.drain(done, running)
				return sp.err
			}
			if sp.pos == sp.end {
				left--
				if err := v.finishSpan(sp); err != nil && v.failed == nil {
					v.failed = err
				}
			}
		case <-v.pt.Changed():
			if running == 0 {
				v.wait += time.Since(t)
			}
		case <-ctx.Done():
			v.drain(done, running)
			return ctx.Err()
		}
	}
	return nil
}

// drain waits for the running workers.
func (v *PrefixVerifier) drain(done chan *vspan, running int) {
	for ; running > 0; running-- {
		<-done
	}
}

// next returns the idle span with the longest written stretch to hash,
// with its end set, or nil.
func (v *PrefixVerifier) next() *vspan {
	bs := int64(v.h.Blocksize)
	var best *vspan
	var bestLen int64
	for _, sp := range v.spans {
		if sp.working || sp.pos == sp.end {
			continue
		}
		end := sp.pos
		for end < sp.end && end-sp.pos < verifyWindow && v.pt.Done(end/bs) {
			end = min(end+bs, sp.end)
		}
		if end-sp.pos > bestLen {
			best, bestLen = sp, end-sp.pos
			best.to = end
		}
	}
	return best
}

// hash feeds bytes [sp.pos, sp.to) of the output to the span's hashes.
func (v *PrefixVerifier) hash(sp *vspan, buf []byte) error {
	for sp.pos < sp.to {
		chunk := buf[:min(sp.to-sp.pos, int64(len(buf)))]
		if _, err := v.r.ReadAt(chunk, sp.pos); err != nil && !(errors.Is(err, io.EOF) && sp.pos+int64(len(chunk)) == v.h.Length) {
			return fmt.Errorf("verify: read output at %d: %w", sp.pos, err)
		}
		for _, hh := range sp.hashes {
			hh.Write(chunk)
		}
		sp.pos += int64(len(chunk))
		v.hashed.Add(int64(len(chunk)))
	}
	return nil
}

// finishSpan checks a fully hashed span of a chain against the chain's
// state at its end; the last span (and a serial hash) is checked by Verify.
func (v *PrefixVerifier) finishSpan(sp *vspan) error {
	if !v.chained || sp.index == len(v.spans)-1 {
		return nil
	}
	got, err := SHA256State(sp.hashes[0])
	if err != nil {
		return err
	}
	if want := v.h.SHA256Chain.States[sp.index]; got != want {
		return fmt.Errorf("verify: SHA-256 of bytes %d to %d ends in state %x, the hash chain says %x: %w",
			sp.start, sp.end, got, want, ErrMismatch)
	}
	return nil
}

// Times returns how long Run's workers spent reading and hashing, together,
// and how long Run waited for blocks to be written with none of them
// working. Call it after Run has returned.
func (v *PrefixVerifier) Times() (busy, waiting time.Duration) {
	return time.Duration(v.busy.Load()), v.wait
}

// Verify compares the hashes once Run has hashed the whole output. It
// returns ErrNoFileHash when the control file has no whole-file hash.
func (v *PrefixVerifier) Verify() error {
	for _, sp := range v.spans {
		if sp.pos != sp.end {
			return fmt.Errorf("verify: only %d of %d bytes hashed", v.hashed.Load(), v.h.Length)
		}
	}
	if len(v.want) == 0 {
		return ErrNoFileHash
	}
	if v.failed != nil {
		return v.failed
	}
	last := v.spans[len(v.spans)-1]
	for i, hh := range last.hashes {
		if got := hh.Sum(nil); !bytes.Equal(got, v.want[i]) {
			return fmt.Errorf("verify: %s is %x, want %x: %w", v.names[i], got, v.want[i], ErrMismatch)
		}
	}
	return nil
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
