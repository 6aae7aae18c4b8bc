//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package osfile

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// TimesExact reports whether SetTimes keeps nanoseconds: not here,
// where futimes keeps microseconds.
const TimesExact = false

// setTimes is futimes(2) on the open file.
func setTimes(f *os.File, atime, mtime time.Time) error {
	tv := []unix.Timeval{unix.NsecToTimeval(atime.UnixNano()), unix.NsecToTimeval(mtime.UnixNano())}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	if err := rc.Control(func(fd uintptr) { terr = unix.Futimes(int(fd), tv) }); err != nil {
		return err
	}
	return terr
}
