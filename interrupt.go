package zsyncpipe

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/dustin/go-humanize"
)

// keptBlocks returns the number of verified blocks that the partial result
// keeps for the next run.
func (j *syncJob) keptBlocks() int64 {
	var kept int64
	if j.part != nil && j.part.f != nil { // the new partial result was kept
		for i := int64(0); i < j.f.Blocks(); i++ {
			if j.part.pt.Done(i) {
				kept++
			}
		}
	}
	return kept
}

// failed turns the error of a failed run into one that tells the user what
// to do: an interrupted sync (its context cancelled, as by Ctrl-C) wraps
// ErrInterrupted and the context's cause, a full disk wraps ErrNoSpace and
// the error; both say how much the partial result keeps and that running
// the same command again resumes. Other errors are returned as they are.
func (j *syncJob) failed(ctx context.Context, err error) error {
	resume := fmt.Sprintf("run the same command again to resume (%d of %d blocks kept)", j.keptBlocks(), j.f.Blocks())
	switch {
	case ctx.Err() != nil:
		return &hintError{
			msg:   fmt.Sprintf("sync %s: %v; %s", j.out, ErrInterrupted, resume),
			wraps: []error{ErrInterrupted, context.Cause(ctx)},
		}
	case errors.Is(err, syscall.ENOSPC):
		need := "more space is needed"
		if used, free, ok := diskUsage(j.out + ".part"); ok {
			need = fmt.Sprintf("%s more is needed in %s, %s is free", humanize.IBytes(uint64(max(j.f.Length-used, 0))), filepath.Dir(j.out), humanize.IBytes(uint64(free)))
		}
		return &hintError{
			msg:   fmt.Sprintf("sync %s: %v: %s; free some and %s (%v)", j.out, ErrNoSpace, need, resume, err),
			wraps: []error{ErrNoSpace, err},
		}
	}
	return err
}

// hintError is an error with a message of its own that matches the errors
// it wraps.
type hintError struct {
	msg   string
	wraps []error
}

func (e *hintError) Error() string   { return e.msg }
func (e *hintError) Unwrap() []error { return e.wraps }
