package osfile

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// syncData is fdatasync: the data and the size, not the times.
func syncData(f *os.File) error {
	return control(f, func(fd int) error { return unix.Fdatasync(fd) })
}

// writeback starts writing the range without waiting for it.
// Only a file that cannot be used (closed) is an error: a failing hint
// (EINVAL on some file systems) is not.
func writeback(f *os.File, off, n int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if err := rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return &fs.PathError{Op: "writeback", Path: f.Name(), Err: err}
	}
	return nil
}

// hasWriteback: Linux has sync_file_range(2).
const hasWriteback = true

// control runs fn on f's descriptor, again on EINTR.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if ferr = fn(int(fd)); !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// hasSyncFS: Linux has syncfs(2).
const hasSyncFS = true

// syncFS is syncfs(2) on the file system holding dir.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return control(d, unix.Syncfs)
}
