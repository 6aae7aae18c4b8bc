// Package prefault backs freshly allocated slices with writable memory in
// one system call, before they are used.
//
// A large slice fresh from the operating system has no memory behind it
// yet. Where the program reads a page of it before writing it (a hash table
// probed before it is filled, a bitmap tested before it is set, a slice of
// pointers written under the garbage collector's write barrier, which reads
// the old value first), Linux maps its shared zero page on the read and
// copies it on the write. Each such copy-on-write fault takes a page fault
// and, in a process with threads on other CPUs, a TLB shootdown: an
// interrupt to every other CPU that runs the process, which the faulting
// thread waits for. In a virtual machine that wait is long (tens of
// microseconds here), and much longer when another virtual CPU is not
// running at the time. A mirror of go1.22.12 -> go1.24.5 took 816-1,347
// of them; 389-641 with Slice where most of them were (see docs/trees.md,
// "Page faults").
package prefault

import "unsafe"

// pageSize is the smallest page size of the platforms Slice acts on.
const pageSize = 4096

// Slice asks the kernel to back the whole pages of s's backing array, up
// to its capacity, with writable memory now: one system call instead of a
// fault per page, and no copy-on-write. The contents do not change. It is
// a hint: it does nothing where the platform has no such call
// (MADV_POPULATE_WRITE, Linux 5.14), for slices under two pages, and when
// the call fails.
func Slice[T any](s []T) {
	var zero T
	size := uintptr(cap(s)) * unsafe.Sizeof(zero)
	if size < 2*pageSize {
		return
	}
	base := unsafe.Pointer(unsafe.SliceData(s[:1]))
	p := uintptr(base)
	start := (p + pageSize - 1) &^ (pageSize - 1)
	end := (p + size) &^ (pageSize - 1)
	if end <= start {
		return
	}
	populate(unsafe.Slice((*byte)(unsafe.Add(base, start-p)), end-start))
}
