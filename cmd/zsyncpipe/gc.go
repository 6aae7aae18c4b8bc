package main

import (
	"os"
	"runtime/debug"
)

// syncGCPercent is the GOGC that sync runs with unless the GOGC environment
// variable is set. A sync's heap is nearly all live data — the block index
// (about 75 bytes per block), the scan's segment buffers, the md5-simd
// servers — and it makes little garbage (a few MB per run: fetched blocks
// are written from the buffer they are checked in), so Go's default of
// 100, which lets the heap grow to twice what is live before collecting,
// only adds that much to the resident set. Measured on the go1.24.4 ->
// go1.24.5 pair (docs/performance.md, "Memory budget"): with 1 MiB scan
// segments, peak RSS 28.7 MB at 100, 26.5-28.0 MB at 25, 25.3 MB at 10,
// for 5, 22 and 40 ms of collector CPU time in a 2.3 s sync.
const syncGCPercent = 10

// tightGC sets GOGC to percent for the rest of a command, unless the user
// chose one in the environment, and returns the function that restores
// the previous setting (tests run commands in one process).
func tightGC(percent int) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	old := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(old) }
}
