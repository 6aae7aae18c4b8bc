//go:build unix

package indexer

import (
	"io/fs"
	"syscall"
)

// inodeOf returns the inode number in fi, or 0.
func inodeOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
