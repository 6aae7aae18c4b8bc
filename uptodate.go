package zsyncpipe

import (
	"context"
	"os"
	"time"

	"github.com/zsyncpipe/zsyncpipe/control"
	"github.com/zsyncpipe/zsyncpipe/stages"
)

// upToDate reports whether the file at path is already the target of f:
// a regular file of the right length (checked first, for nothing) whose
// whole-file hash matches (one read of the file). A control file without a
// whole-file hash never makes an output up to date: the sync then checks
// every block as usual.
func upToDate(ctx context.Context, path string, f *control.File) bool {
	if f.SHA1 == nil && f.SHA256 == nil {
		return false
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != f.Length {
		return false
	}
	fh, err := os.Open(path)
	if err != nil {
		return false
	}
	defer fh.Close()
	return stages.Verify(ctx, fh, &f.Header) == nil
}

// upToDateSummary is the Summary of a sync that found the output up to
// date and wrote nothing.
func upToDateSummary(out string, f *control.File, start time.Time) *Summary {
	return &Summary{Output: out, Length: f.Length, Reused: f.Length, UpToDate: true, Duration: time.Since(start)}
}
