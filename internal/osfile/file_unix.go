//go:build unix

package osfile

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// openNonblock makes open(2) of a FIFO return at once instead of waiting for
// a writer. It has no effect on regular files.
const openNonblock = syscall.O_NONBLOCK

// openFile is os.OpenFile for a regular file, with two system calls
// (open, and the fcntl of os.NewFile) where os.OpenFile makes six: it
// also tries to register the descriptor with the runtime's poller, which
// a regular file refuses (an epoll_ctl that fails, four fcntl to put the
// file into non-blocking mode and back). The file is in blocking mode, as
// os.OpenFile leaves a regular file.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(name, flag|syscall.O_CLOEXEC, sysMode(perm))
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// sysMode is perm as open(2) takes it (os.OpenFile's conversion).
func sysMode(perm os.FileMode) uint32 {
	m := uint32(perm.Perm())
	if perm&os.ModeSetuid != 0 {
		m |= syscall.S_ISUID
	}
	if perm&os.ModeSetgid != 0 {
		m |= syscall.S_ISGID
	}
	if perm&os.ModeSticky != 0 {
		m |= syscall.S_ISVTX
	}
	return m
}

// replace is rename(2), atomic on every Unix file system.
func replace(_ context.Context, src, dst string) error {
	return rename(src, dst)
}

// rename is os.Rename without its lstat of dst (a lookup of the whole
// path per rename, to refuse a directory there): rename(2) refuses to
// put a file over a directory itself (EISDIR), and the callers rename
// files only.
func rename(src, dst string) error {
	for {
		err := syscall.Rename(src, dst)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
		}
		return nil
	}
}

// syncDir fsyncs the directory. File systems that cannot (EINVAL) need not.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// sparse does nothing: Unix file systems with holes make them on Truncate.
func sparse(*os.File) {}

func openWrite(name string, flag int, perm os.FileMode) (*os.File, error) {
	return openFile(name, flag, perm)
}
