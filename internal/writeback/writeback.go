// Package writeback asks the operating system to start writing a file's
// dirty pages to storage early, while the program still writes the file,
// so that the flush before a rename (fsync) finds little left to do.
//
// It is a hint and never a promise of durability: a later (*os.File).Sync
// is still needed. Where the system has no such call (anything but Linux)
// Start does nothing.
package writeback

import (
	"os"
	"sync/atomic"
)

// Start asks the system to begin writing the dirty pages of f in
// [off, off+n) to storage without waiting for the writes to finish; n == 0
// means to the end of the file. It does nothing where the system offers no
// such call.
func Start(f *os.File, off, n int64) error { return start(f, off, n) }

// Every calls Start on the whole file each time about every bytes have been
// written to it, as reported by Wrote. It is safe for concurrent use: when
// several writers cross the mark at once, one of them issues the hint and
// the others go on.
type Every struct {
	f     *os.File
	every int64
	since atomic.Int64
	busy  atomic.Bool
	hints atomic.Int64 // hints given, for the tests
}

// NewEvery returns an Every hinting f after each every bytes written.
func NewEvery(f *os.File, every int64) *Every { return &Every{f: f, every: every} }

// Wrote records that n more bytes were written to the file, and starts the
// writeback of the file's dirty pages when enough have been written since
// the last time. Errors are ignored: the hint is only a hint.
func (e *Every) Wrote(n int64) {
	if e.since.Add(n) < e.every || !e.busy.CompareAndSwap(false, true) {
		return
	}
	e.since.Store(0)
	e.hints.Add(1)
	_ = Start(e.f, 0, 0)
	e.busy.Store(false)
}
