package zsyncpipe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readFileInto writes the content of the regular file at p to w, reading
// through buf, and returns its stat: with four system calls for most files
// (open, fstat, read, close), without updating its access time where the
// caller may (O_NOATIME: on a tree copied with cp -a, every first read
// would otherwise write the inode) and without blocking on a FIFO that
// took the file's place.
//
// p is relative to the directory dirfd (atCWD: the working directory).
func readFileInto(dirfd int, p string, buf []byte, w io.Writer) (os.FileInfo, error) {
	fd, err := openRead(dirfd, p, unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) { // O_NOATIME: not the file's owner
		fd, err = openRead(dirfd, p, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	fi := &statInfo{name: filepath.Base(p)}
	if err := ignoringEINTR(func() error { return syscall.Fstat(fd, &fi.sys) }); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	fi.fill()
	if !fi.mode.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	err = readAll(func(b []byte) (int, error) {
		for {
			n, err := unix.Read(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, &os.PathError{Op: "read", Path: p, Err: err}
			}
			return n, nil
		}
	}, fi.size, buf, w)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return fi, nil
}

// atCWD, as a directory descriptor, makes a path relative to the working
// directory (and an absolute one absolute).
const atCWD = unix.AT_FDCWD

func openRead(dirfd int, p string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// statInfo is the os.FileInfo of a stat made here, as os.Lstat makes it
// (Sys returns the *syscall.Stat_t).
type statInfo struct {
	name  string
	size  int64
	mode  os.FileMode
	mtime time.Time
	sys   syscall.Stat_t
}

// fill sets the fields from sys, as package os does.
func (s *statInfo) fill() {
	st := &s.sys
	s.size = st.Size
	s.mtime = time.Unix(st.Mtim.Unix())
	s.mode = os.FileMode(st.Mode & 0o777)
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		s.mode |= os.ModeDevice
	case syscall.S_IFCHR:
		s.mode |= os.ModeDevice | os.ModeCharDevice
	case syscall.S_IFDIR:
		s.mode |= os.ModeDir
	case syscall.S_IFIFO:
		s.mode |= os.ModeNamedPipe
	case syscall.S_IFLNK:
		s.mode |= os.ModeSymlink
	case syscall.S_IFSOCK:
		s.mode |= os.ModeSocket
	}
	if st.Mode&syscall.S_ISGID != 0 {
		s.mode |= os.ModeSetgid
	}
	if st.Mode&syscall.S_ISUID != 0 {
		s.mode |= os.ModeSetuid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		s.mode |= os.ModeSticky
	}
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.size }
func (s *statInfo) Mode() os.FileMode  { return s.mode }
func (s *statInfo) ModTime() time.Time { return s.mtime }
func (s *statInfo) IsDir() bool        { return s.mode.IsDir() }
func (s *statInfo) Sys() any           { return &s.sys }

// maxKeptDirs bounds the directories kept open for hashing: a quarter of
// the descriptors the process may open (Go raises the soft limit to the
// hard one), at most 4096.
func maxKeptDirs() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int(min(rl.Cur/4, 4096))
}
