package osfile

import "golang.org/x/sys/unix"

// reserveDescriptors duplicates a descriptor onto the lowest free number
// at or above n-1 (F_DUPFD never replaces an open descriptor, as dup2
// would), which makes the kernel grow the table to hold it, and closes it.
func reserveDescriptors(n int) {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil {
		return
	}
	n = int(min(uint64(n), rl.Cur))
	if n <= 64 { // the table every process starts with
		return
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, n-1); err == nil {
		unix.Close(high)
	}
}
