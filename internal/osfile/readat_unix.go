//go:build unix

package osfile

import (
	"io"
	"os"
	"syscall"
)

// rawFile is a file descriptor opened by openRaw.
type rawFile int

// openRaw opens path for reading: open(2), non-blocking (a FIFO fails
// instead of waiting for a writer), nothing more.
func openRaw(path string) (rawFile, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC|openNonblock, 0)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return rawFile(fd), nil
	}
}

func (f rawFile) close() { syscall.Close(int(f)) }

func readAt(path string, b []byte, off int64) (int, error) {
	f, err := openRaw(path)
	if err != nil {
		return 0, err
	}
	defer f.close()
	return f.readAt(path, b, off)
}

// readAt is ReadAt on an open file (path only names it in errors).
func (f rawFile) readAt(path string, b []byte, off int64) (int, error) {
	fd := int(f)
	if off < 0 {
		return 0, &os.PathError{Op: "readat", Path: path, Err: syscall.EINVAL}
	}
	n := 0
	for n < len(b) {
		k, err := syscall.Pread(fd, b[n:], off+int64(n))
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return n, &os.PathError{Op: "read", Path: path, Err: err}
		case k == 0:
			return n, io.EOF
		}
		n += k
	}
	return n, nil
}
