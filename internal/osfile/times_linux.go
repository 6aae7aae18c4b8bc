package osfile

import (
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TimesExact reports whether SetTimes keeps nanoseconds.
const TimesExact = true

// setTimes is futimens(3) on the open file: utimensat(2) with no path,
// which keeps nanoseconds (futimes keeps microseconds).
func setTimes(f *os.File, atime, mtime time.Time) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	if err := rc.Control(func(fd uintptr) {
		_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if errno != 0 {
			terr = errno
		}
	}); err != nil {
		return err
	}
	return terr
}
