package osfile

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockOffset is the byte that LockFileEx locks. Windows locks are
// mandatory: a lock on the data would make reads through other handles
// fail, so the lock covers one byte far beyond any real file's end.
const lockOffset = 1 << 62

// lock takes LockFileEx(LOCKFILE_EXCLUSIVE_LOCK|LOCKFILE_FAIL_IMMEDIATELY)
// on the byte at lockOffset; the lock belongs to the handle.
func lock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(h uintptr) {
		ol := &windows.Overlapped{Offset: uint32(lockOffset & 0xffffffff), OffsetHigh: uint32(lockOffset >> 32)}
		lerr = windows.LockFileEx(windows.Handle(h), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	}); err != nil {
		return err
	}
	if errors.Is(lerr, windows.ERROR_LOCK_VIOLATION) || errors.Is(lerr, windows.ERROR_IO_PENDING) {
		return ErrLocked
	}
	return lerr
}
