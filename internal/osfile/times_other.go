//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package osfile

import (
	"os"
	"time"
)

// TimesExact reports whether SetTimes keeps nanoseconds: as os.Chtimes
// does, since it sets them by the file's name here.
const TimesExact = true

// setTimes sets the times by the file's name: this system has no futimes.
func setTimes(f *os.File, atime, mtime time.Time) error {
	return os.Chtimes(f.Name(), atime, mtime)
}
