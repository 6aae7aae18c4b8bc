package osfile

import (
	"os"
	"time"

	"golang.org/x/sys/windows"
)

// TimesExact reports whether SetTimes keeps nanoseconds: not here, where
// a FILETIME counts 100 ns.
const TimesExact = false

// setTimes is SetFileTime on the handle. os.Chtimes would open the file
// again with a share mode that this open handle conflicts with.
func setTimes(f *os.File, atime, mtime time.Time) error {
	a, m := windows.NsecToFiletime(atime.UnixNano()), windows.NsecToFiletime(mtime.UnixNano())
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var terr error
	if err := rc.Control(func(h uintptr) { terr = windows.SetFileTime(windows.Handle(h), nil, &a, &m) }); err != nil {
		return err
	}
	return terr
}
