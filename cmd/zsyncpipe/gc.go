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

// mirrorGCPercent is the GOGC that mirror runs with unless the GOGC
// environment variable is set. A mirror allocates little (about 80 MB in a
// run of go1.22.12 -> go1.24.5, with 21-30 MB live), but every collection
// marks the whole live heap — the tree index, the walk of DIR, the scan's
// index — with a quarter of the cores, beside a run that keeps both busy.
// Letting the heap grow to three times what is live instead of twice
// halves the collections: on that pair, 8 runs each, alternating, 0.095 s
// less CPU in every pair of runs (1.93 s against 2.03 s) and 0.09 s less
// wall time, for 14 MB more peak RSS (86 MB against 72 MB; docs/trees.md,
// "Memory").
const mirrorGCPercent = 200

// commandGC sets GOGC to percent for the rest of a command, unless the
// user chose one in the environment, and returns the function that
// restores the previous setting (tests run commands in one process).
func commandGC(percent int) (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	old := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(old) }
}
