//go:build unix

package indexer

import (
	"io/fs"
	"os"
	"syscall"
)

// openSeen opens the file at full by its path, without following a
// symlink in its last element, and returns it only if it is the very file
// (device and inode) that the walk saw through the tree's os.Root: then it
// is that file inside the tree, whatever became of the path's directories
// since. That costs one open instead of one per directory of the path
// (os.Root resolves each element on its own), which counts for trees of
// many small files. It returns nil when the walk's information has no
// inode, or the file is not that one: the caller then opens through the
// os.Root.
func openSeen(full string, seen fs.FileInfo) *os.File {
	want, ok := seen.Sys().(*syscall.Stat_t)
	if !ok || want.Ino == 0 {
		return nil
	}
	// syscall.Open and os.NewFile: os.OpenFile would also try to add the
	// file to the poller, four fcntl and an epoll_ctl that fail for
	// regular files. O_NONBLOCK: a FIFO put in its place does not block.
	fd, err := syscall.Open(full, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Ino != want.Ino || st.Dev != want.Dev {
		syscall.Close(fd)
		return nil
	}
	// Reads of a regular file do not care about O_NONBLOCK; clear it all
	// the same, so that the file behaves as any other.
	if syscall.SetNonblock(fd, false) != nil {
		syscall.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), full)
}
