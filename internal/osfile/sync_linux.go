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
	return syncFSFile(d)
}

// syncFSFile is syncfs(2) on the file system holding the open file d.
func syncFSFile(d *os.File) error {
	return control(d, unix.Syncfs)
}

// preallocate reserves size bytes for f with fallocate when the file system
// has that much free with room to spare; see Preallocate.
func preallocate(f *os.File, size int64) bool {
	var fs unix.Statfs_t
	if size <= 0 || unix.Fstatfs(int(f.Fd()), &fs) != nil {
		return false
	}
	// Leave an eighth of the free space (and at least 64 MiB) to others:
	// a failed fallocate may keep what it had allocated, and a file that
	// barely fits is better written sparse, block by block, so that a full
	// disk stops it with what it has kept.
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if size > free-max(free/8, 64<<20) {
		return false
	}
	return control(f, func(fd int) error { return unix.Fallocate(fd, 0, 0, size) }) == nil
}
