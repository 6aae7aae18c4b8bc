// Package atomicfile writes files so that readers see either the old
// content or the complete new one, never a part: the data goes to a
// temporary file in the same directory, which is flushed and renamed over
// the path only when it is complete.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write writes the file at path through write and returns the number of
// bytes written. On any error the path is left as it was and the temporary
// file is removed. The file gets mode perm.
func Write(path string, perm os.FileMode, write func(io.Writer) error) (n int64, err error) {
	return WriteOptions(path, Options{Perm: perm}, write)
}

// Options configures WriteOptions.
type Options struct {
	// Perm is the new file's mode; 0 means 0644.
	Perm os.FileMode
	// Suffix ends the temporary file's name, ".<base>.<random><Suffix>";
	// "" means ".tmp" (what RemoveStale removes).
	Suffix string
	// NoSync skips the fsync before the rename: other processes still never
	// see a part of the file, but it may be empty after a power failure.
	NoSync bool
}

// WriteOptions is Write with options.
func WriteOptions(path string, opts Options, write func(io.Writer) error) (n int64, err error) {
	if opts.Perm == 0 {
		opts.Perm = 0o644
	}
	if opts.Suffix == "" {
		opts.Suffix = ".tmp"
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*"+opts.Suffix)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
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
	if err := f.Chmod(opts.Perm); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if !opts.NoSync {
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	return cw.n, nil
}

// WriteBytes writes data to the file at path, as Write does.
func WriteBytes(path string, perm os.FileMode, data []byte) error {
	_, err := Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	return err
}

// RemoveStale removes the temporary files that Write calls for path left
// behind when their process was killed.
func RemoveStale(path string) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(base)+".*.tmp"))
	for _, p := range stale {
		os.Remove(p)
	}
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
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
