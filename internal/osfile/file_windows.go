package osfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// openNonblock is not needed: opening a named pipe or a device on Windows
// does not wait for the other end.
const openNonblock = 0

// openFile opens like os.OpenFile but shares delete access, so that the
// file can be renamed while this handle is open. O_APPEND and O_SYNC are
// not supported (nothing here needs them).
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	if flag&(os.O_APPEND|os.O_SYNC) != 0 {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.ErrUnsupported}
	}
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	var access uint32
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		access = windows.GENERIC_READ
	case os.O_WRONLY:
		access = windows.GENERIC_WRITE
	default:
		access = windows.GENERIC_READ | windows.GENERIC_WRITE
	}
	var disposition uint32
	switch {
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		disposition = windows.CREATE_NEW
	case flag&(os.O_CREATE|os.O_TRUNC) == os.O_CREATE|os.O_TRUNC:
		disposition = windows.CREATE_ALWAYS
	case flag&os.O_CREATE != 0:
		disposition = windows.OPEN_ALWAYS
	case flag&os.O_TRUNC != 0:
		disposition = windows.TRUNCATE_EXISTING
	default:
		disposition = windows.OPEN_EXISTING
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	share := uint32(windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE)
	h, err := windows.CreateFile(p, access, share, nil, disposition, attrs, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(h), name), nil
}

// replaceWait bounds how long replace retries a destination that another
// program holds open.
const replaceWait = 5 * time.Second

// replace is MoveFileEx(MOVEFILE_REPLACE_EXISTING) through os.Rename, which
// replaces dst in one step or not at all. It fails while another program
// has dst (or src) open without FILE_SHARE_DELETE — virus scanners and
// indexers do so for a moment — so it retries for up to replaceWait.
//
// A read-only dst is replaced as rename(2) replaces it on Unix: its
// read-only attribute, which MoveFileEx refuses to replace, is cleared
// first, and put back if the rename fails.
func replace(ctx context.Context, src, dst string) error {
	restore := clearReadOnly(dst)
	deadline := time.Now().Add(replaceWait)
	wait := 10 * time.Millisecond
	for {
		err := os.Rename(src, dst)
		if err == nil {
			return nil
		}
		if !retryable(err) || time.Now().After(deadline) {
			restore()
			return err
		}
		select {
		case <-ctx.Done():
			restore()
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// clearReadOnly clears the read-only attribute of path, if it has one, and
// returns the function that puts it back.
func clearReadOnly(path string) (restore func()) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return func() {}
	}
	attrs, err := windows.GetFileAttributes(p)
	if err != nil || attrs&windows.FILE_ATTRIBUTE_READONLY == 0 {
		return func() {}
	}
	if windows.SetFileAttributes(p, attrs&^windows.FILE_ATTRIBUTE_READONLY) != nil {
		return func() {}
	}
	return func() { windows.SetFileAttributes(p, attrs) }
}

// retryable reports whether a failed rename may succeed once another
// program lets go of the file.
func retryable(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION) ||
		errors.Is(err, windows.ERROR_ACCESS_DENIED) ||
		errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}

// syncDir does nothing: NTFS journals its metadata, and a directory cannot
// be opened as a file for FlushFileBuffers without backup privileges.
func syncDir(string) error { return nil }

// sparse sets FSCTL_SET_SPARSE, without which NTFS allocates and zeroes the
// whole length on Truncate.
func sparse(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(h uintptr) {
		var n uint32
		windows.DeviceIoControl(windows.Handle(h), windows.FSCTL_SET_SPARSE, nil, 0, nil, 0, &n, nil)
	})
}

func rename(src, dst string) error { return os.Rename(src, dst) }

func openWrite(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}
