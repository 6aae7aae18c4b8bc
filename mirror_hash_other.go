//go:build !linux

package zsyncpipe

import (
	"fmt"
	"io"
	"os"
)

// atCWD stands for the working directory as a directory descriptor:
// the only one readFileInto takes on this system.
const atCWD = -100

// readFileInto writes the content of the regular file at p to w, reading
// through buf, and returns its stat. dirfd is atCWD (see the Linux
// version).
func readFileInto(_ int, p string, buf []byte, w io.Writer) (os.FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	if err := readAll(f.Read, fi.Size(), buf, w); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return fi, nil
}

// maxKeptDirs is 0: directories are not kept open on this system.
func maxKeptDirs() int { return 0 }
