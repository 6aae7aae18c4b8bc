//go:build !linux

package zsyncpipe

import (
	"io"
	"os"
)

// atCWD stands for the working directory as a directory descriptor:
// the only one readFileInto takes on this system.
const atCWD = -100

// readFileInto writes the content of the regular file at p to w, reading
// through buf, and returns its stat (readPathInto). dirfd is atCWD (see
// the Linux version).
func readFileInto(_ int, p string, buf []byte, w io.Writer) (os.FileInfo, error) {
	return readPathInto(p, buf, w)
}

// maxKeptDirs is 0: directories are not kept open on this system.
func maxKeptDirs() int { return 0 }
