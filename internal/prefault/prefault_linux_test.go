package prefault

import (
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// minorFaults returns the calling thread's minor page faults so far.
func minorFaults(t *testing.T) int64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Minflt
}

// fresh maps n pages that no one has touched, as the Go heap gets them
// from the kernel (the heap itself may hand out pages already used).
func fresh(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// After Slice, reading and then writing every page of fresh memory takes
// (almost) no page faults; without it, one or two per page.
func TestSliceBacksPages(t *testing.T) {
	const pages = 1024
	runtime.LockOSThread() // the counts are the thread's
	defer runtime.UnlockOSThread()
	touch := func(b []byte) int64 {
		var sum byte
		before := minorFaults(t)
		for i := 0; i < len(b); i += pageSize {
			sum += b[i] // a read first, as a hash table's probe
			b[i] = sum + 1
		}
		return minorFaults(t) - before
	}
	if n := touch(fresh(t, pages)); n < pages {
		t.Fatalf("fresh memory took %d faults for %d pages: the test cannot tell what Slice does", n, pages)
	}
	b := fresh(t, pages)
	Slice(b)
	if n := touch(b); n > pages/16 {
		t.Errorf("after Slice: %d faults for %d pages, want at most %d", n, pages, pages/16)
	}
	for i := 0; i < len(b); i += pageSize {
		if b[i] != 1 {
			t.Fatalf("b[%d] = %d, want 1", i, b[i])
		}
	}
}
