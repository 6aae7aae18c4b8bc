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
	"time"

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
	// ErrNotRegular reports a seed, input or output path that is not a
	// regular file (a directory, FIFO or device).
	ErrNotRegular = errors.New("not a regular file")
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
	// Stages holds the per-stage statistics of the sync pipeline.
	Stages []pipeline.StageStats
}
