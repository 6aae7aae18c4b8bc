//go:build linux

package pagecachetest

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Resident reports, per page of the file at path, whether that page is
// cached. It fails the test on any error; an empty file has no pages.
func Resident(tb testing.TB, path string) []bool {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if fi.Size() == 0 {
		return nil
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	defer unix.Munmap(mem)
	ps := os.Getpagesize()
	vec := make([]byte, (len(mem)+ps-1)/ps)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		tb.Fatalf("mincore %s: %v", path, errno)
	}
	out := make([]bool, len(vec))
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out
}

// Count returns how many pages of the file at path are cached, and how
// many it has.
func Count(tb testing.TB, path string) (cached, pages int) {
	tb.Helper()
	r := Resident(tb, path)
	for _, c := range r {
		if c {
			cached++
		}
	}
	return cached, len(r)
}

// TempDir returns a new temporary directory (tb.TempDir) on a file system
// that keeps file data on a disk, so that the pages of its files can be
// written back and dropped. On tmpfs, where the pages are the files' only
// copy and are never dropped, it skips the test: what it checks cannot
// happen there.
func TempDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		tb.Fatalf("statfs %s: %v", dir, err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		tb.Skipf("%s is on tmpfs: no writeback, and its pages are never dropped", dir)
	}
	return dir
}
