package stages

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/control"
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

// verifyWindow is the most a PrefixVerifier reads at once.
const verifyWindow = 1 << 20

// PrefixVerifier computes the whole-file hashes of an output while it is
// being written: it follows the contiguous prefix of blocks the Patcher has
// written and hashes each piece as soon as it is complete, so that the
// serial whole-file hash overlaps the scan and the downloads instead of
// following them.
type PrefixVerifier struct {
	r      io.ReaderAt
	h      *control.Header
	pt     *Patcher
	fh     *fileHashes
	pos    int64 // owned by Run
	hashed atomic.Int64
	buf    []byte
}

// NewPrefixVerifier returns a verifier reading the output through r as pt
// writes it.
func NewPrefixVerifier(r io.ReaderAt, h *control.Header, pt *Patcher) *PrefixVerifier {
	return &PrefixVerifier{r: r, h: h, pt: pt, fh: newFileHashes(h), buf: make([]byte, verifyWindow)}
}

// Hashed returns how many leading bytes of the output have been hashed. It
// may be called while Run runs.
func (v *PrefixVerifier) Hashed() int64 { return v.hashed.Load() }

// Run hashes the output's prefix as it grows, until all of it is hashed or
// ctx is done.
func (v *PrefixVerifier) Run(ctx context.Context) error {
	for v.pos < v.h.Length {
		before := v.pos
		if err := v.Step(0); err != nil {
			return err
		}
		if v.pos == before {
			select {
			case <-v.pt.Changed():
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// Step hashes the part of the output's written prefix not hashed yet, at
// most about limit bytes of it when limit is positive, and returns without
// waiting for more. A pipeline stage that learns of written blocks from its
// input calls it for each item (with a limit, so that it never holds up
// the stages before it for long); Run calls it whenever the Patcher
// reports a change. Step must not be called concurrently with itself or
// Run.
func (v *PrefixVerifier) Step(limit int64) error {
	stop := v.h.Length
	if limit > 0 {
		stop = min(v.pos+limit, v.h.Length)
	}
	if len(v.fh.hashes) == 0 {
		// Nothing to hash: the verifier only follows the writes.
		for v.pos < v.h.Length && v.pt.Done(v.pos/int64(v.h.Blocksize)) {
			v.pos = min(v.pos+int64(v.h.Blocksize), v.h.Length)
		}
		v.hashed.Store(v.pos)
		return nil
	}
	bs := int64(v.h.Blocksize)
	for v.pos < stop {
		// The end of the written prefix, in whole blocks, at most a buffer.
		end := v.pos
		for end < v.h.Length && end-v.pos < verifyWindow && v.pt.Done(end/bs) {
			end = min(end+bs, v.h.Length)
		}
		if end == v.pos {
			return nil
		}
		if err := v.hash(v.pos, end); err != nil {
			return err
		}
		v.pos = end
		v.hashed.Store(end)
	}
	return nil
}

// hash feeds bytes [from, to) of the output to the hashes.
func (v *PrefixVerifier) hash(from, to int64) error {
	for from < to {
		chunk := v.buf[:min(to-from, int64(len(v.buf)))]
		if _, err := v.r.ReadAt(chunk, from); err != nil && !(errors.Is(err, io.EOF) && from+int64(len(chunk)) == v.h.Length) {
			return fmt.Errorf("verify: read output at %d: %w", from, err)
		}
		v.fh.Write(chunk)
		from += int64(len(chunk))
	}
	return nil
}

// Verify compares the hashes once Run has hashed the whole output. It
// returns ErrNoFileHash when the control file has no whole-file hash.
func (v *PrefixVerifier) Verify() error {
	if v.pos != v.h.Length {
		return fmt.Errorf("verify: only %d of %d bytes hashed", v.pos, v.h.Length)
	}
	return v.fh.check()
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
