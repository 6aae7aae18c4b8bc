package zsyncpipe

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/relpath"
	"github.com/zsyncpipe/zsyncpipe/simd"
	"github.com/zsyncpipe/zsyncpipe/stages"
	"github.com/zsyncpipe/zsyncpipe/strong"
)

// MakeOptions configures Make.
type MakeOptions struct {
	// Blocksize is the block size; 0 chooses zsyncmake's default for the
	// length (2048 below 100 MB, else 4096).
	Blocksize int
	// Length, if known, is the input's length; it lets the default block
	// size be chosen before reading. MakeFile sets it.
	Length int64
	// Legacy writes the zsync 0.6.2 format (MD4 records, SHA-1) instead of
	// spec 0.8 (MD5 records through the SIMD lanes, SHA-256 File-Hash).
	Legacy bool
	// Filename is the Filename header; required.
	Filename string
	// URLs are the URL headers; when empty, Filename is used (a URL
	// relative to the control file).
	URLs []string
	// MTime is the MTime header; zero omits it.
	MTime time.Time
	// Workers bounds the hashing goroutines; 0 means one per physical core.
	Workers int
	// NoSIMD forces the portable MD5 path.
	NoSIMD bool
	// Hasher, if set, computes the block hashes instead of a Hasher made
	// (and closed) by this call: callers that make many control files
	// share one. Its algorithm must be MD4 with Legacy, else MD5.
	Hasher *simd.Hasher
	// Progress, if set, is called from time to time with bytes read.
	Progress func(Progress)
	// Stats, if set, receives the per-stage statistics of the run.
	Stats func([]pipeline.StageStats)
	// Resume, Prefix and State continue from the state of an earlier
	// version of the input that this one extends by appending, and give
	// the state a later extension can continue from (see
	// stages.ChecksumOptions): with Resume, r starts at Resume.Complete()
	// and Length must be the whole input's length.
	Resume *stages.ChecksumState
	Prefix io.ReaderAt
	State  func(*stages.ChecksumState)
}

// Make reads the target from r and returns its control file.
func Make(ctx context.Context, r io.Reader, opts MakeOptions) (*control.File, error) {
	if err := relpath.CheckName(opts.Filename); err != nil {
		return nil, fmt.Errorf("make: filename %w: %w", err, ErrUsage)
	}
	if bs := opts.Blocksize; bs != 0 && control.CheckMakeBlocksize(int64(bs)) != nil {
		return nil, fmt.Errorf("make: %w: %w", control.CheckMakeBlocksize(int64(bs)), ErrUsage)
	}
	alg := strong.MD5
	if opts.Legacy {
		alg = strong.MD4
	}
	h := opts.Hasher
	if h == nil {
		var err error
		if h, err = simd.NewHasher(alg, simd.Options{Fallback: opts.NoSIMD}); err != nil {
			return nil, fmt.Errorf("make: %w", err)
		}
		defer h.Close()
	} else if h.Algorithm() != alg {
		return nil, fmt.Errorf("make: the shared hasher computes %v, the format needs %v: %w", h.Algorithm(), alg, ErrUsage)
	}
	co := stages.ChecksumOptions{
		Blocksize: opts.Blocksize,
		Length:    opts.Length,
		Algorithm: alg,
		SHA1:      opts.Legacy,
		SHA256:    !opts.Legacy,
		Hasher:    h,
		Workers:   opts.Workers,
		Stats:     opts.Stats,
		Resume:    opts.Resume,
		Prefix:    opts.Prefix,
		State:     opts.State,
	}
	if opts.Progress != nil {
		co.Progress = func(n int64) { opts.Progress(Progress{Phase: "checksum", Done: n, Total: opts.Length}) }
	}
	f, err := stages.BlockChecksums(ctx, r, co)
	if err != nil {
		return nil, fmt.Errorf("make: %w", err)
	}
	f.Version = control.SpecVersion
	if opts.Legacy {
		f.Version = control.LegacyVersion
	}
	f.Filename = opts.Filename
	f.MTime = opts.MTime.UTC().Truncate(time.Second)
	if opts.MTime.IsZero() {
		f.MTime = time.Time{}
	}
	f.URLs = append([]string(nil), opts.URLs...)
	if len(f.URLs) == 0 {
		f.URLs = []string{opts.Filename}
	}
	return f, nil
}

// MakeFile makes the control file of the file at path. Filename defaults to
// the file's base name, MTime to its modification time and Length to its
// size.
func MakeFile(ctx context.Context, path string, opts MakeOptions) (*control.File, error) {
	// Checked before opening: open(2) of a FIFO blocks for ever.
	in, fi, err := osfile.OpenRegular(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("make: %w", err)
	}
	defer in.Close()
	if opts.Filename == "" {
		opts.Filename = filepath.Base(path)
	}
	if opts.MTime.IsZero() {
		opts.MTime = fi.ModTime()
	}
	opts.Length = fi.Size()
	return Make(ctx, in, opts)
}
