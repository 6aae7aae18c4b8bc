// Package writeback gets a file that is being written onto the disk while it
// is written, so that the flush before a rename (fsync) finds little left to
// do: it starts the writeback of the file's dirty pages early and, where the
// system can do that, also flushes the file in the background as it grows.
//
// None of it is a promise of durability: the writer's own final flush
// (osfile.Sync) is still needed, and Every.Close says whether a background
// flush failed (a write error reported to one flush of a file is not
// reported to the next one, so it must not be lost). Where the system has no
// call to start writeback (anything but Linux) Every does nothing.
package writeback

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
)

// Start asks the system to begin writing the dirty pages of f in
// [off, off+n) to storage without waiting for the writes to finish; n == 0
// means to the end of the file. It does nothing where the system offers no
// such call.
//
// The system call lives in package osfile with the other per-OS file
// operations: sync_file_range(SYNC_FILE_RANGE_WRITE) on Linux.
func Start(f *os.File, off, n int64) error { return osfile.Writeback(f, off, n) }

// Every gets a file onto the disk while it is written. Each time about
// every bytes have been written to it (as reported by Wrote) it starts the
// writeback of the file's dirty pages and then flushes the file
// (osfile.Sync), one flush at a time: marks passed during a flush are
// taken together once it ends. So at the end of the writing only the
// bytes written during the last flush are left for the final flush.
//
// The system calls run on a goroutine of Every's own, never on the
// writers': a hint can wait for the disk's queue and a flush for the disk
// (measured on a virtual disk: up to 0.1 s for a hint, 0.4 s for a flush),
// and a writer that reports bytes must not. Where the system cannot start
// writeback without waiting (anything but Linux) Every does nothing and
// starts no goroutine.
//
// Wrote is safe for concurrent use; Close must be called once, when the
// writing is over (before the final flush) or abandoned.
type Every struct {
	f     *os.File
	every int64
	flush bool

	since atomic.Int64  // bytes written since the last mark
	wake  chan struct{} // a mark was passed (capacity 1: marks coalesce)
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	err   error // the first error of a background flush (owned by run, then by Close)

	hints, flushes atomic.Int64 // for the tests
}

// NewEvery returns an Every for f that starts writeback and a background
// flush each time about every bytes have been written.
func NewEvery(f *os.File, every int64) *Every {
	return newEvery(f, every, osfile.HasWriteback, true)
}

// NewHints returns an Every for f that only starts writeback each time
// about every bytes have been written, never flushing: for a file that its
// writer flushes later together with others (one syncfs for many files,
// where each file's own flush would force a journal commit of its own).
func NewHints(f *os.File, every int64) *Every {
	return newEvery(f, every, osfile.HasWriteback, false)
}

// newEvery is NewEvery with the choices a test makes: whether to run at
// all, and whether to flush or only give hints.
func newEvery(f *os.File, every int64, active, flush bool) *Every {
	e := &Every{f: f, every: every, flush: flush, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if !active {
		close(e.done)
		return e
	}
	go e.run()
	return e
}

// Wrote records that n more bytes were written to the file and, when
// enough have been written since the last mark, wakes the goroutine that
// starts their writeback. It never waits.
func (e *Every) Wrote(n int64) {
	if e.since.Add(n) < e.every {
		return
	}
	e.since.Store(0)
	select {
	case e.wake <- struct{}{}:
	default: // a mark is pending already
	}
}

// run gives the hints and makes the flushes until Close.
func (e *Every) run() {
	defer close(e.done)
	for {
		select {
		case <-e.stop:
			return
		case <-e.wake:
		}
		select {
		case <-e.stop:
			return // a mark and Close at once: the caller's final flush follows, none here
		default:
		}
		e.hints.Add(1)
		_ = Start(e.f, 0, 0) // a hint: its failure is no error
		if !e.flush || e.err != nil {
			continue
		}
		if err := osfile.Sync(e.f); err != nil {
			e.err = err
		}
		e.flushes.Add(1)
	}
}

// Close stops the hints and flushes, waits for one under way to end, and
// returns the error of the first background flush that failed: the data
// written before it may not be on the disk, and a later flush of the file
// may not report that again. The caller's final flush still follows.
func (e *Every) Close() error {
	e.once.Do(func() { close(e.stop) })
	<-e.done
	return e.err
}
