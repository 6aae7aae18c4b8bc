package zsyncpipe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// readFileInto writes the content of the regular file at p to w, reading
// through buf, and returns its stat: with four system calls for most files
// (open, fstat, read, close), without updating its access time where the
// caller may (O_NOATIME: on a tree copied with cp -a, every first read
// would otherwise write the inode) and without blocking on a FIFO that
// took the file's place.
func readFileInto(p string, buf []byte, w io.Writer) (os.FileInfo, error) {
	fd, err := openRead(p, unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) { // O_NOATIME: not the file's owner
		fd, err = openRead(p, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	fi := &statInfo{name: filepath.Base(p), size: st.Size, mode: os.FileMode(st.Mode & 0o777), mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
	err = readAll(func(b []byte) (int, error) {
		for {
			n, err := unix.Read(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, &os.PathError{Op: "read", Path: p, Err: err}
			}
			return n, nil
		}
	}, fi.size, buf, w)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return fi, nil
}

func openRead(p string, flags int) (int, error) {
	for {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
