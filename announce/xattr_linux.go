package announce

import (
	"errors"

	"golang.org/x/sys/unix"
)

// getAttr returns the extended attribute name of path, or nil.
func getAttr(path, name string) []byte {
	buf := make([]byte, 256)
	for {
		n, err := unix.Getxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 64<<10 {
			buf = make([]byte, 4*len(buf))
			continue
		}
		if err != nil {
			return nil
		}
		return buf[:n]
	}
}

// setAttr sets an extended attribute; file systems without them are
// ignored.
func setAttr(path, name string, value []byte) {
	_ = unix.Setxattr(path, name, value, 0)
}
