// Package atomicfile writes files so that readers see either the old file
// or the complete new one: into a temporary file in the same directory,
// renamed over the target only when everything was written.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Options configures Write.
type Options struct {
	// Mode is the new file's mode; 0 means 0644.
	Mode fs.FileMode
	// Suffix ends the temporary file's name, ".<base>.<random><Suffix>";
	// "" means ".tmp".
	Suffix string
	// NoSync skips the fsync before the rename: the file is still never
	// seen half-written by other processes, but may be empty after a power
	// failure.
	NoSync bool
}

// Write writes the file at path through write and returns the number of
// bytes written. On any error the temporary file is removed and path is
// left as it was.
func Write(path string, opts Options, write func(io.Writer) error) (n int64, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if opts.Suffix == "" {
		opts.Suffix = ".tmp"
	}
	if opts.Mode == 0 {
		opts.Mode = 0o644
	}
	f, err := os.CreateTemp(dir, "."+base+".*"+opts.Suffix)
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	cw := &countWriter{w: f}
	bw := bufio.NewWriterSize(cw, 64<<10)
	if err := write(bw); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(opts.Mode); err != nil {
		return 0, err
	}
	if !opts.NoSync {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
