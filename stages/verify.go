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
