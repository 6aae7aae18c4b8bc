//go:build linux || darwin || freebsd

package zsyncpipe

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// diskUsage returns the bytes the file at path occupies on disk (less than
// its size for a sparse file) and the bytes free for an unprivileged user
// on its file system; ok is false when either is unknown.
func diskUsage(path string) (used, free int64, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false
	}
	st, isStat := fi.Sys().(*syscall.Stat_t)
	var fs unix.Statfs_t
	if !isStat || unix.Statfs(path, &fs) != nil {
		return 0, 0, false
	}
	return int64(st.Blocks) * 512, int64(fs.Bavail) * int64(fs.Bsize), true
}
