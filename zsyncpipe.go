// Package zsyncpipe makes zsync control files and rebuilds files from them:
// the high-level API over the stages in package stages.
//
// Make computes a control file for a target; Sync rebuilds the target from
// local seed files and fetches only the missing blocks from a RangeSource.
// Both run as pipelines of concurrent stages (package pipeline) and report
// per-stage statistics.
package zsyncpipe

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/osfile"
	"github.com/zsyncpipe/zsyncpipe/pipeline"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// Errors that classify a failure, for callers that map failures to exit
// codes as zsync does. Errors returned by Make and Sync wrap at most one of
// them; errors wrapping none are I/O errors.
var (
	// ErrVerify reports that the rebuilt file failed its whole-file hash
	// or length (the same error as stages.ErrMismatch).
	ErrVerify = stages.ErrMismatch
	// ErrFetch reports that missing blocks could not be fetched.
	ErrFetch = stages.ErrFetch
	// ErrUsage reports options that make no sense together.
	ErrUsage = errors.New("invalid options")
	// ErrBusy reports that another sync, in this process or another, is
	// writing the same output: it holds the lock on Output+".part".
	ErrBusy = errors.New("output is being synced by another process")
	// ErrNotRegular reports a seed, input or output path that is not a
	// regular file (a directory, FIFO or device). It is checked before the
	// file is opened: opening a FIFO could block for ever.
	ErrNotRegular = osfile.ErrNotRegular
	// ErrNoSpace reports a sync stopped by a full disk: the partial
	// result and its state are kept for the next run.
	ErrNoSpace = errors.New("no space left on device")
	// ErrInterrupted reports a sync stopped by its context (Ctrl-C): the
	// partial result and its state are kept for the next run.
	ErrInterrupted = errors.New("interrupted")
)

// Progress is a snapshot of a running Sync or Make, passed to a progress
// callback. Phase names the current work ("scan", "fetch", "verify",
// "checksum"); Done and Total count bytes of that phase.
type Progress struct {
	Phase       string
	Done, Total int64
}

// Summary reports what a Sync did.
type Summary struct {
	// Output is the path of the rebuilt file.
	Output string
	// Length is the target's length.
	Length int64
	// Reused counts target bytes taken from local data, Fetched those
	// that came from the network, each block once however often it was
	// received: Reused+Fetched is at most Length.
	Reused, Fetched int64
	// Requests, Ranges and Overhead describe the downloads: requests made,
	// ranges fetched, and bytes received beyond the payload.
	Requests, Ranges, Overhead int64
	// Downloaded counts every byte received for the missing blocks: bodies
	// (gaps, multipart framing, whole-file answers and retries included)
	// and headers.
	Downloaded int64
	// UpToDate reports that the output was the target already: nothing
	// was scanned, fetched or written.
	UpToDate bool
	// Seeds lists the local files that were scanned.
	Seeds []string
	// Duration is the wall time of the whole sync.
	Duration time.Duration
	// Stages holds the per-stage statistics of the sync pipeline, and a
	// last row, "hash", for the whole-file hash that runs beside it.
	Stages []pipeline.StageStats
	// Timeline says when each phase of the sync ended.
	Timeline Timeline
}

// Timeline says when, counted from the start of a Sync, each of its
// phases ended; a phase that did not happen (nothing missing, no flush)
// is zero. The phases overlap: the hash follows the scan and the fetch as
// they write, and the flush runs while the last of the hash is computed.
type Timeline struct {
	// Prepared: the partial result and the seeds are open.
	Prepared time.Duration
	// Scanned: every seed is scanned and every block found is written.
	Scanned time.Duration
	// FetchStart and Fetched: the fetch of the missing blocks began, and
	// ended with every one of them written (the hash may have read the
	// last of them a moment before).
	FetchStart, Fetched time.Duration
	// Hashed: the whole-file hash has read the whole result.
	Hashed time.Duration
	// Flushed: the final flush returned (the result is on the disk).
	Flushed time.Duration
	// Done: the result is in place (renamed, its directory flushed).
	Done time.Duration
}

// String returns the timeline on one line, the phases in the order they
// end, e.g. "prepared 0.030s, scanned 0.310s, fetch 0.312s-0.350s, hashed
// 0.410s, flushed 0.440s, done 0.450s".
func (t Timeline) String() string {
	var parts []string
	add := func(name string, d time.Duration) {
		if d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.3fs", name, d.Seconds()))
		}
	}
	add("prepared", t.Prepared)
	add("scanned", t.Scanned)
	if t.FetchStart > 0 {
		parts = append(parts, fmt.Sprintf("fetch %.3fs-%.3fs", t.FetchStart.Seconds(), t.Fetched.Seconds()))
	}
	add("hashed", t.Hashed)
	add("flushed", t.Flushed)
	add("done", t.Done)
	return strings.Join(parts, ", ")
}
